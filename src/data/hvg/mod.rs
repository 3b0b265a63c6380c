//! Highly variable genes, reproducing scanpy 1.11.5 `sc.pp.highly_variable_genes`.

pub mod loess;
