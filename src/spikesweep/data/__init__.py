"""Datasets by name: the `dataset` config group resolves here. Imports nothing else of spikesweep."""

from spikesweep.data.registry import DataBundle, DataError, DatasetMeta, build_datasets, dataset_names, meta_from_config

__all__ = ["DataBundle", "DataError", "DatasetMeta", "build_datasets", "dataset_names", "meta_from_config"]
