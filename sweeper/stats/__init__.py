"""What a sweep's runs say, as pure functions below the driver and the report.

``statistics`` (functions over arrays), ``matrices`` (stored rows laid out per task), ``comparisons``
(every configuration against the baseline: intervals, paired tests, Holm, verdicts). The driver records
the verdicts in Optuna's study; the report puts them in words. Nothing here reads the database or
imports torch.
"""
