//! Architecture surgery (scArches): a trained model grows parameters for batches it never saw.
//! Every weight of the reference is copied unchanged; only the places a batch enters get new
//! rows (encoder and decoder batch one-hot weights, per-batch gene offsets) or new columns (the
//! adversarial batch classifier's output). Reference cells therefore embed exactly as before.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::model::scdreamer::Scdreamer;
use crate::ops::Backend;
use crate::tape::ParamId;

/// Parameters with one row per batch.
pub const BATCH_ROW_PARAMS: [&str; 4] = [
    "enc_h1_wbatch",
    "dec_h1_wbatch",
    "dec_scale_batch",
    "dec_dropout_batch",
];

/// Parameters with one column per batch (the batch classifier's output layer).
pub const BATCH_COL_PARAMS: [&str; 2] = ["disb_out_w", "disb_out_b"];

/// How the rows of a new batch start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchInit {
    /// The mean of the reference batches' rows: a batch "in the middle" of the reference.
    Mean,
    /// The rows of this reference batch (a copy).
    Copy(u32),
}

/// `model` extended by `n_new` batches, each initialised by `init[i]`. The new batches get the
/// codes `n_old..n_old + n_new`.
pub fn extend<B: Backend>(
    model: &Scdreamer<B>,
    init: &[BatchInit],
) -> anyhow::Result<Scdreamer<B>> {
    let old = model.cfg.n_batches;
    let mut cfg = model.cfg.clone();
    cfg.n_batches = old + init.len();
    // The new model's random initialisation is overwritten everywhere below.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut grown = Scdreamer::new(model.params.backend(), cfg, &mut rng);
    let ids: Vec<(String, ParamId, usize, usize)> = grown
        .params
        .iter()
        .map(|(_, n, r, c, id)| (n.to_string(), id, r, c))
        .collect();
    for (name, id, rows, cols) in ids {
        let src = model.params.find(&name).ok_or_else(|| {
            anyhow::anyhow!("surgery: the reference model has no parameter {name}")
        })?;
        let (r0, c0) = model.params.shape(src);
        let v = model.params.value_to_host(src);
        let new = if (r0, c0) == (rows, cols) {
            v
        } else if BATCH_ROW_PARAMS.contains(&name.as_str()) && r0 == old && c0 == cols {
            extend_rows(&v, old, cols, init)
        } else if BATCH_COL_PARAMS.contains(&name.as_str()) && c0 == old && r0 == rows {
            extend_cols(&v, rows, old, init)
        } else {
            anyhow::bail!(
                "surgery: parameter {name} is {r0}x{c0} in the reference and {rows}x{cols} with \
                 the new batches, and is not a known per-batch parameter"
            );
        };
        grown.params.set_value(id, &new)?;
    }
    Ok(grown)
}

/// One row per batch: new rows appended after the reference's.
fn extend_rows(v: &[f32], old: usize, cols: usize, init: &[BatchInit]) -> Vec<f32> {
    let mut out = v.to_vec();
    for how in init {
        match *how {
            BatchInit::Mean => {
                let mut row = vec![0f64; cols];
                for b in 0..old {
                    for (a, x) in row.iter_mut().zip(&v[b * cols..(b + 1) * cols]) {
                        *a += *x as f64;
                    }
                }
                out.extend(row.iter().map(|a| (a / old as f64) as f32));
            }
            BatchInit::Copy(b) => {
                let b = b as usize;
                out.extend_from_slice(&v[b * cols..(b + 1) * cols]);
            }
        }
    }
    out
}

/// One column per batch: new columns appended after the reference's, row by row.
fn extend_cols(v: &[f32], rows: usize, old: usize, init: &[BatchInit]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * (old + init.len()));
    for r in 0..rows {
        let row = &v[r * old..(r + 1) * old];
        out.extend_from_slice(row);
        for how in init {
            out.push(match *how {
                BatchInit::Mean => (row.iter().map(|&x| x as f64).sum::<f64>() / old as f64) as f32,
                BatchInit::Copy(b) => row[b as usize],
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::model::config::ModelConfig;

    fn model(sup: bool, batches: usize) -> Scdreamer<Cpu> {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let cfg = ModelConfig::default_preset(7, batches, if sup { 3 } else { 0 });
        Scdreamer::new(&Cpu::new(), cfg, &mut rng)
    }

    /// Every reference weight survives; new rows are the mean (or the copied batch), and the
    /// per-batch parameters are exactly the known ones, for both model kinds.
    #[test]
    fn extend_keeps_reference_weights_and_initialises_new_batches() {
        for sup in [false, true] {
            let m = model(sup, 3);
            let g = extend(&m, &[BatchInit::Mean, BatchInit::Copy(1)]).unwrap();
            assert_eq!(g.cfg.n_batches, 5);
            let mut grown = 0;
            for (_, name, r, c, id) in m.params.iter() {
                let old = m.params.value_to_host(id);
                let nid = g.params.find(name).unwrap();
                let new = g.params.value_to_host(nid);
                let (nr, nc) = g.params.shape(nid);
                if (nr, nc) == (r, c) {
                    assert_eq!(old, new, "{name} changed");
                } else if nr == r + 2 {
                    grown += 1;
                    assert_eq!(&new[..r * c], &old[..], "{name}: reference rows changed");
                    for j in 0..c {
                        let mean = (0..3).map(|b| old[b * c + j]).sum::<f32>() / 3.0;
                        assert!((new[3 * c + j] - mean).abs() < 1e-6, "{name}: mean row");
                        assert_eq!(new[4 * c + j], old[c + j], "{name}: copied row");
                    }
                } else {
                    grown += 1;
                    assert_eq!(nc, c + 2, "{name}");
                    for i in 0..r {
                        assert_eq!(&new[i * nc..i * nc + c], &old[i * c..(i + 1) * c]);
                        assert_eq!(new[i * nc + 4], old[i * c + 1], "{name}: copied column");
                    }
                }
            }
            // Sup has no batch-gene offsets: encoder + decoder rows and the classifier's output.
            assert_eq!(grown, if sup { 4 } else { 6 }, "sup={sup}");
        }
    }
}
