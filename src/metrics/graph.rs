//! Connected components and scib-metrics' graph connectivity.

use super::neighbors::Neighbors;

/// Strongly connected components of a directed graph given as adjacency lists (iterative
/// Tarjan). Returns the component of every node.
pub fn strong_components(adj: &[Vec<u32>]) -> Vec<u32> {
    let n = adj.len();
    const NONE: u32 = u32::MAX;
    let mut index = vec![NONE; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut comp = vec![NONE; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut next_index = 0u32;
    let mut n_comp = 0u32;
    let mut call: Vec<(u32, usize)> = Vec::new();
    for root in 0..n {
        if index[root] != NONE {
            continue;
        }
        call.push((root as u32, 0));
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root as u32);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut edge)) = call.last_mut() {
            let v = v as usize;
            if *edge < adj[v].len() {
                let w = adj[v][*edge] as usize;
                *edge += 1;
                if index[w] == NONE {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w as u32);
                    on_stack[w] = true;
                    call.push((w as u32, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    let p = parent as usize;
                    low[p] = low[p].min(low[v]);
                }
                if low[v] == index[v] {
                    loop {
                        let w = stack.pop().expect("Tarjan stack") as usize;
                        on_stack[w] = false;
                        comp[w] = n_comp;
                        if w == v {
                            break;
                        }
                    }
                    n_comp += 1;
                }
            }
        }
    }
    comp
}

/// Size of each component (indexed by component id).
pub fn component_sizes(comp: &[u32]) -> Vec<usize> {
    let n = comp.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
    let mut sizes = vec![0usize; n];
    for &c in comp {
        sizes[c as usize] += 1;
    }
    sizes
}

/// scib-metrics `graph_connectivity` on the 15-neighbour graph (self included): for every label,
/// the directed kNN graph restricted to its cells, the largest strongly connected component's
/// share of them; the mean over labels.
pub fn graph_connectivity(nb: &Neighbors, labels: &[u32], n_labels: usize) -> f64 {
    let mut scores = Vec::new();
    for l in 0..n_labels as u32 {
        let cells: Vec<usize> = (0..nb.n).filter(|&i| labels[i] == l).collect();
        if cells.is_empty() {
            continue;
        }
        let mut local = vec![u32::MAX; nb.n];
        for (p, &c) in cells.iter().enumerate() {
            local[c] = p as u32;
        }
        let adj: Vec<Vec<u32>> = cells
            .iter()
            .map(|&c| {
                nb.row(c)
                    .0
                    .iter()
                    .map(|&j| local[j as usize])
                    .filter(|&j| j != u32::MAX)
                    .collect()
            })
            .collect();
        let sizes = component_sizes(&strong_components(&adj));
        scores.push(*sizes.iter().max().unwrap_or(&0) as f64 / cells.len() as f64);
    }
    scores.iter().sum::<f64>() / scores.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarjan_finds_cycles_not_one_way_links() {
        // 0 -> 1 -> 2 -> 0 is one component; 3 -> 0 alone; 4 <-> 5.
        let adj = vec![vec![1], vec![2], vec![0], vec![0], vec![5], vec![4]];
        let c = strong_components(&adj);
        assert_eq!(c[0], c[1]);
        assert_eq!(c[1], c[2]);
        assert_ne!(c[3], c[0]);
        assert_eq!(c[4], c[5]);
        assert_ne!(c[4], c[0]);
        let mut sizes = component_sizes(&c);
        sizes.sort();
        assert_eq!(sizes, vec![1, 2, 3]);
    }
}
