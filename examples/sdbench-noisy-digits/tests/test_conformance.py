"""The sdbench dataset conformance tests on noisy-digits, generated into a temporary directory."""

from harness.api import DatasetConformance


class TestNoisyDigits(DatasetConformance):
    dataset_name = "noisy-digits"
    # No label_file: the data is generated, and its fingerprint is the generator's version and options.
