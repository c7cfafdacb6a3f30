"""Value sets of the DMP profile (CI-SIS / NOS), loaded once and looked up by name.

Built-in data (data/valuesets.json) is compiled from the public ANS NOS value sets. An
operator refreshes it from the official IHE SVS files with `manage.py terminology_import`.
"""

from dmp.terminology.registry import Code, ValueSet, class_for_type, value_set

__all__ = ["Code", "ValueSet", "class_for_type", "value_set"]
