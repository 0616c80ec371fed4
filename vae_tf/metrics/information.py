"""Discretisation and mutual information for the metrics."""

import numpy as np


def histogram_bins(codes, num_bins):
    """Each column of codes [n, d] discretised into num_bins equal-width bins over its own range -> ints [n, d].

    A column whose range is too narrow for num_bins distinct float edges (a collapsed latent, constant up to
    rounding) is one bin: numpy refuses to bin it, and it carries no information about any factor."""
    def bins(column):
        try:
            return np.digitize(column, np.histogram_bin_edges(column, num_bins)[:-1])
        except ValueError:  # "Too many bins for data range"
            return np.ones(len(column), np.int64)
    return np.stack([bins(column) for column in codes.T], axis=1)
