"""Reference-data generator for Cr-doped Sb2Te3 (CHGNet-labelled); run it with ../generate.py."""
