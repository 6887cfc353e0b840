"""Exports for the evaluators' own tools (contract §10): tabular files (CSV, XLSX, SPSS,
Stata) and their dictionary, charts of statistics tables, and HTML reports."""
