"""What a run ran on and how long it took (`run_info.json`): the facts a model card reports as hardware
and wall-clock, and what tests check to know a launch really used N processes."""

import os
import platform

import torch
import transformers


def describe_run(trainer, train_output, wall_clock_seconds: float) -> dict:
    """Processes, device, versions and timings of a finished `Trainer.train()`."""
    args = trainer.args
    device = args.device
    return {
        "num_processes": args.world_size,
        "distributed_type": str(trainer.accelerator.distributed_type).split(".")[-1],
        "device": str(device.type),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_count": os.cpu_count(),
        "torch_threads_per_process": torch.get_num_threads(),
        "global_step": trainer.state.global_step,
        "train_runtime_seconds": train_output.metrics.get("train_runtime"),
        "wall_clock_seconds": round(wall_clock_seconds, 1),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }
