"""Stand-in for transformers' `tests/exporters/test_export.py`, which its PyPI sdist does not ship.

`ModelTesterMixin` only inherits `ExportTesterMixin`; our test classes set `test_torch_exportable = False`,
so no export test is lost by this empty mixin.
"""


class ExportTesterMixin:
    pass
