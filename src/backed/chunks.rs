//! How the cells are cut into chunks.

use crate::data::h5ad::RowReader;

/// Default chunk: about this many bytes of CSR (4-byte value + 4-byte column per stored count).
pub const DEFAULT_CHUNK_BYTES: u64 = 128 << 20;
/// Fewest cells in a default chunk (very dense rows).
pub const MIN_CHUNK_CELLS: usize = 1024;

/// Cells per chunk for `--chunk-cells` left out: as many as fit [`DEFAULT_CHUNK_BYTES`] of CSR
/// over every gene of the file, at the file's mean stored values per cell, and at least
/// [`MIN_CHUNK_CELLS`].
pub fn default_chunk_cells(reader: &RowReader) -> usize {
    let n = reader.n_rows().max(1);
    let stored = reader.stored_values(0, reader.n_rows()).max(1);
    let bytes_per_cell = (8 * stored).div_ceil(n as u64).max(1);
    ((DEFAULT_CHUNK_BYTES / bytes_per_cell) as usize).max(MIN_CHUNK_CELLS)
}

/// Consecutive row ranges of `chunk_cells` rows (the last one shorter) covering `n` rows.
pub fn chunk_ranges(n: usize, chunk_cells: usize) -> Vec<(usize, usize)> {
    let c = chunk_cells.max(1);
    (0..n.div_ceil(c))
        .map(|i| (i * c, ((i + 1) * c).min(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_row_once() {
        assert_eq!(chunk_ranges(10, 4), vec![(0, 4), (4, 8), (8, 10)]);
        assert_eq!(chunk_ranges(8, 4), vec![(0, 4), (4, 8)]);
        assert!(chunk_ranges(0, 4).is_empty());
    }
}
