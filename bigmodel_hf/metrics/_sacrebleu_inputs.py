"""Input reshaping shared by the sacreBLEU-backed metric scripts (copied beside them by `evaluate`)."""


def reference_streams(references):
    """Per-prediction references (a str, or a list of str) -> sacreBLEU's list of reference streams.

    sacreBLEU wants one stream per reference *position* (`streams[k][i]` = k-th reference of sentence i),
    while `evaluate` hands over one row per prediction; this transposes and checks the rows line up.
    """
    rows = [[ref] if isinstance(ref, str) else list(ref) for ref in references]
    counts = sorted({len(row) for row in rows})
    if len(counts) > 1:
        raise ValueError(f"Every prediction needs the same number of references; got counts {counts}.")
    return [list(stream) for stream in zip(*rows)]
