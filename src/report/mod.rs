//! Pictures of an integration: UMAP layouts, PNG scatter plots, training curves and the
//! self-contained HTML report of `evaluate --report` / `integrate --report`.

pub mod curves;
pub mod html;
pub mod png;
pub mod umap;
