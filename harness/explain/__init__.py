"""The explanations and the numbers checks compare.

SOAP and pair-shell descriptors, the error surrogate and its SHAP values, grouping into feature classes,
faithfulness maths, bootstrap intervals and the metrics, all pure functions of arrays.
"""
