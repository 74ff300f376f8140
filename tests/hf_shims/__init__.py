"""Package root of the extracted transformers common tests (`hf_tests`); this file is ours."""
