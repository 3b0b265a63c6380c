//! One fixed block of cells, generated from its own RNG stream, so that the output
//! depends on the seed only and not on how many threads share the blocks.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::model::{LOG_LIB_SD, Model};
use super::nb::GeneNb;

/// Cells per block. Part of the output's definition: changing it changes every file.
pub const CHUNK_CELLS: usize = 4096;

/// RNG stream of the global parameters; block `i` uses stream `i + 1`.
pub const MODEL_STREAM: u64 = 0;

/// A block of generated cells in CSR form (row lengths instead of pointers).
#[derive(Debug, Default)]
pub struct Chunk {
    pub row_nnz: Vec<u32>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
    pub batch: Vec<u32>,
    pub cell_type: Vec<u32>,
}

/// The RNG of stream `stream` for `seed`: ChaCha8 keyed by the seed, one stream per use.
pub fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Generate cells `[first, first + n)` (block `index`): batch uniform, type from the batch's
/// proportions, lognormal library size, then NB counts per gene and optional dropout.
pub fn generate(
    model: &Model,
    genes: &[GeneNb],
    dropout: f64,
    seed: u64,
    index: usize,
    n: usize,
) -> Chunk {
    let mut rng = stream_rng(seed, index as u64 + 1);
    let (g, t) = (model.n_genes, model.n_types);
    // ~10% density; reserve a little more to avoid regrowth in the common case.
    let guess = n * g / 8 + 16;
    let mut c = Chunk {
        row_nnz: Vec::with_capacity(n),
        indices: Vec::with_capacity(guess),
        data: Vec::with_capacity(guess),
        batch: Vec::with_capacity(n),
        cell_type: Vec::with_capacity(n),
    };
    for _ in 0..n {
        let k = rng.gen_range(0..model.n_batches);
        let u: f64 = rng.r#gen();
        let cdf = &model.type_cdf[k * t..(k + 1) * t];
        let ty = cdf.iter().position(|&c| u < c).unwrap_or(t - 1);
        let z: f64 = rng.sample(StandardNormal);
        let lib = (model.lib_shift[k] + LOG_LIB_SD * z).exp();
        let rate = &model.rate[(k * t + ty) * g..(k * t + ty + 1) * g];
        let before = c.indices.len();
        for (j, (r, nb)) in rate.iter().zip(genes).enumerate() {
            let x = nb.sample(r * lib, &mut rng);
            if x == 0 || (dropout > 0.0 && rng.r#gen::<f64>() < dropout) {
                continue;
            }
            c.indices.push(j as u32);
            c.data.push(x as f32);
        }
        c.row_nnz.push((c.indices.len() - before) as u32);
        c.batch.push(k as u32);
        c.cell_type.push(ty as u32);
    }
    c
}
