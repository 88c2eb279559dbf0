"""Stamps and I/O: atomic writes, tables, FITS images and catalogs, stamp datasets. No torch."""
