"""Training: data, optimisers, the fit plan and trainer, the bounded record, runs, Dask."""
