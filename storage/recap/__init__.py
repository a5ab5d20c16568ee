"""The recap of a period for a scope, as files: a bar chart (PNG) and a workbook (XLSX).

Both are built from `storage.oversight.PeriodReports` (one read, see there) by pure functions
that return bytes: /rekap sends them in chat (through the evidence store and the outbox), and
`laporham export recap` writes the same workbook to disk. Neither touches the database."""

from storage.recap.chart import Bar, recap_chart
from storage.recap.workbook import recap_workbook

__all__ = ["Bar", "recap_chart", "recap_workbook"]
