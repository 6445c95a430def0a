//! Matrix products with bf16 operands and f32 accumulation, for mixed
//! precision training on x86 CPUs with AVX-512 BF16 (`vdpbf16ps`: 32
//! products a cycle per instruction, twice an f32 FMA's). Written by hand
//! because the `gemm` crate behind candle has f32 and f16 kernels but none
//! for this instruction, and candle's own bf16 products convert back to
//! f32 first.
//!
//! Both operands are rounded to bf16 (round to nearest even, as PyTorch's
//! autocast does) and packed into panels holding, per pair of positions
//! along the shared dimension `k`, the two bf16 values of one row (or
//! column) side by side: the layout `vdpbf16ps` multiplies. Products and
//! sums stay in f32. The result is independent of the thread count: each
//! output element is one sequential sum over `k`.

use rayon::prelude::*;

/// Output rows of one micro-tile (one broadcast each per `k` pair).
const MR: usize = 12;
/// Output columns of one micro-tile: two vectors of 16 f32.
const NR: usize = 32;
/// Output rows of one parallel task: the task streams the packed B panels
/// once for this many rows.
const MC: usize = 16 * MR;

/// Whether this CPU has the instructions (checked at run time, so one
/// binary serves CPUs with and without them).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Ok when [`available`], else why not, in words for a user (the training
/// config check and [`crate::ops::bf16_products`] both report it).
pub fn require() -> Result<(), &'static str> {
    if available() {
        Ok(())
    } else {
        Err("bf16 mixed precision needs a CPU with AVX-512 BF16 (avx512_bf16), which this one lacks")
    }
}

/// How an operand's f32 values lie in memory, `outer` being its other
/// dimension (A's rows, B's columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `(outer, k)` row-major: `k` contiguous.
    OuterByK,
    /// `(k, outer)` row-major: `outer` contiguous.
    KByOuter,
}

/// One operand of [`matmul`]: `outer * k` contiguous values.
#[derive(Debug, Clone, Copy)]
pub struct Operand<'a> {
    pub data: &'a [f32],
    pub layout: Layout,
}

impl<'a> Operand<'a> {
    pub fn new(data: &'a [f32], layout: Layout) -> Self {
        Operand { data, layout }
    }
}

/// `C = A B` with `A` `(m, k)` and `B` `(k, n)`, C row-major `(m, n)`.
/// Panics when an operand does not hold `m * k` (`k * n`) values or the
/// CPU lacks AVX-512 BF16 (callers check [`available`]).
pub fn matmul(a: Operand, b: Operand, m: usize, k: usize, n: usize) -> Vec<f32> {
    assert_eq!(a.data.len(), m * k, "A is not (m, k)");
    assert_eq!(b.data.len(), k * n, "B is not (k, n)");
    assert!(available(), "bf16 products need AVX-512 BF16");
    if m == 0 || n == 0 {
        return vec![0f32; m * n];
    }
    let a_packed = pack(a, m, k, MR);
    let b_packed = pack(b, n, k, NR);
    let pairs = k.div_ceil(2);
    // Every element is written below, so C is not zeroed first (on the
    // LM head's products that zeroing alone costs a pass over 131 MB).
    let mut c = Vec::with_capacity(m * n);
    c.spare_capacity_mut()[..m * n]
        .par_chunks_mut(MC * n)
        .enumerate()
        .for_each(|(block, c_block)| {
            let row0 = block * MC;
            let rows = c_block.len() / n;
            let mut tile = [0f32; MR * NR];
            for (col_panel, b_panel) in b_packed.chunks(pairs * NR).enumerate() {
                let col0 = col_panel * NR;
                let cols = NR.min(n - col0);
                for r in (0..rows).step_by(MR) {
                    let a_panel = &a_packed[((row0 + r) / MR) * pairs * MR..][..pairs * MR];
                    // SAFETY: `available()` was checked above; the panels
                    // hold `pairs` pairs of MR (NR) values each.
                    unsafe { micro_tile(a_panel, b_panel, pairs, &mut tile) };
                    for (i, tile_row) in tile.chunks(NR).take(MR.min(rows - r)).enumerate() {
                        let at = (r + i) * n + col0;
                        for (out, &value) in c_block[at..at + cols].iter_mut().zip(tile_row) {
                            out.write(value);
                        }
                    }
                }
            }
        });
    // SAFETY: the tasks above wrote all `m * n` elements: each block's
    // rows, each column panel's columns.
    unsafe { c.set_len(m * n) };
    c
}

/// Packs an operand with `outer` rows (columns) into panels of `width`:
/// per panel, per `k` pair, `width` u32s each holding the pair's two bf16
/// values (low half first), zero past `outer` and past an odd `k`.
fn pack(op: Operand, outer: usize, k: usize, width: usize) -> Vec<u32> {
    let pairs = k.div_ceil(2);
    let len = outer.div_ceil(width) * pairs * width;
    let mut packed = Vec::with_capacity(len);
    packed.spare_capacity_mut()[..len]
        .par_chunks_mut(pairs * width)
        .enumerate()
        .for_each(|(panel, dst)| {
            let first = panel * width;
            let count = width.min(outer - first);
            // SAFETY: `matmul` checked `available()`; `dst` is one panel.
            unsafe { pack_panel(op, outer, k, width, first, count, dst) }
        });
    // SAFETY: `pack_panel` writes every value of its panel, padding
    // included.
    unsafe { packed.set_len(len) };
    packed
}

/// One panel of [`pack`]: rows (columns) `first..first + count`.
///
/// # Safety
/// The CPU must have AVX-512 F and BF16; `dst` holds `pairs * width` u32s,
/// all of which it writes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pack_panel(
    op: Operand,
    outer: usize,
    k: usize,
    width: usize,
    first: usize,
    count: usize,
    dst: &mut [std::mem::MaybeUninit<u32>],
) {
    use std::arch::x86_64::*;
    let pairs = k.div_ceil(2);
    let data = op.data;
    // Up to 16 f32 from `data[at..at + len]` (zeros past `len`).
    let load = |at: usize, len: usize| -> __m512 {
        let len = len.min(16);
        let mask: __mmask16 = ((1u32 << len) - 1) as u16;
        // SAFETY: the mask keeps the load within `data[at..at + len]`,
        // which the callers keep within `data`.
        unsafe { _mm512_maskz_loadu_ps(mask, data.as_ptr().add(at)) }
    };
    match op.layout {
        Layout::OuterByK => {
            // A row's consecutive values are its pairs. 16 rows of 16 pairs
            // are converted, transposed in registers and stored as 16 runs
            // of the panel, one per pair; rows past `count` are zeros.
            for r0 in (0..width).step_by(16) {
                let rows = count.saturating_sub(r0).min(16);
                let store: __mmask16 = ((1u32 << (width - r0).min(16)) - 1) as u16;
                for p0 in (0..pairs).step_by(16) {
                    let left = k - 2 * p0;
                    let mut block = [_mm512_setzero_si512(); 16];
                    for (i, lanes) in block.iter_mut().enumerate().take(rows) {
                        let row = (first + r0 + i) * k + 2 * p0;
                        let lo = load(row, left);
                        let hi = if left > 16 {
                            load(row + 16, left - 16)
                        } else {
                            _mm512_setzero_ps()
                        };
                        *lanes =
                            std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
                    }
                    transpose16(&mut block);
                    for (i, pair) in block.iter().enumerate().take(pairs - p0) {
                        // SAFETY: the mask keeps the store within the panel.
                        unsafe {
                            _mm512_mask_storeu_epi32(
                                dst.as_mut_ptr().add((p0 + i) * width + r0).cast(),
                                store,
                                *pair,
                            )
                        };
                    }
                }
            }
        }
        Layout::KByOuter => {
            // Rows 2p and 2p + 1 side by side, 16 columns at a time; the
            // columns past `count` are zeros.
            for p in 0..pairs {
                for r0 in (0..width).step_by(16) {
                    let len = count.saturating_sub(r0).min(16);
                    let low = _mm512_cvtneps_pbh(load(2 * p * outer + first + r0, len));
                    let high = if 2 * p + 1 < k {
                        _mm512_cvtneps_pbh(load((2 * p + 1) * outer + first + r0, len))
                    } else {
                        std::mem::transmute::<__m256i, __m256bh>(_mm256_setzero_si256())
                    };
                    let low = _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(low));
                    let high =
                        _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(high));
                    let pair = _mm512_or_si512(low, _mm512_slli_epi32::<16>(high));
                    let store: __mmask16 = ((1u32 << (width - r0).min(16)) - 1) as u16;
                    // SAFETY: the mask keeps the store within the panel.
                    unsafe {
                        _mm512_mask_storeu_epi32(
                            dst.as_mut_ptr().add(p * width + r0).cast(),
                            store,
                            pair,
                        )
                    };
                }
            }
        }
    }
}

/// Transposes a 16 x 16 block of u32 held as 16 rows: afterwards
/// `block[j]` holds what was column `j`.
///
/// # Safety
/// The CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(block: &mut [std::arch::x86_64::__m512i; 16]) {
    use std::arch::x86_64::*;
    let r = *block;
    // Pairs of rows interleaved by 32 bits, then by 64 bits: each 128-bit
    // lane holds one column of four rows.
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_si512(); 16];
    for g in 0..4 {
        let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
        u[4 * g] = _mm512_unpacklo_epi64(a, c);
        u[4 * g + 1] = _mm512_unpackhi_epi64(a, c);
        u[4 * g + 2] = _mm512_unpacklo_epi64(b, d);
        u[4 * g + 3] = _mm512_unpackhi_epi64(b, d);
    }
    // Now u[4g + c] holds, lane by lane, columns c, c + 4, c + 8, c + 12
    // of rows 4g..4g + 4. Gather the lanes of one column across groups.
    for c in 0..4 {
        let even01 = _mm512_shuffle_i32x4::<0x88>(u[c], u[4 + c]);
        let odd01 = _mm512_shuffle_i32x4::<0xdd>(u[c], u[4 + c]);
        let even23 = _mm512_shuffle_i32x4::<0x88>(u[8 + c], u[12 + c]);
        let odd23 = _mm512_shuffle_i32x4::<0xdd>(u[8 + c], u[12 + c]);
        block[c] = _mm512_shuffle_i32x4::<0x88>(even01, even23);
        block[8 + c] = _mm512_shuffle_i32x4::<0xdd>(even01, even23);
        block[4 + c] = _mm512_shuffle_i32x4::<0x88>(odd01, odd23);
        block[12 + c] = _mm512_shuffle_i32x4::<0xdd>(odd01, odd23);
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack_panel(
    _: Operand,
    _: usize,
    _: usize,
    _: usize,
    _: usize,
    _: usize,
    _: &mut [std::mem::MaybeUninit<u32>],
) {
    unreachable!("matmul checks available() first")
}

/// `tile = A_panel B_panel` over `pairs` k pairs: MR x NR f32, row-major.
///
/// # Safety
/// The CPU must have AVX-512 F and BF16; `a` holds `pairs * MR` and `b`
/// `pairs * NR` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn micro_tile(a: &[u32], b: &[u32], pairs: usize, tile: &mut [f32; MR * NR]) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= pairs * MR && b.len() >= pairs * NR);
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let a = a.as_ptr();
    let b = b.as_ptr();
    for p in 0..pairs {
        // SAFETY: within the panels, by the caller's contract.
        let (b0, b1) = unsafe {
            (
                _mm512_loadu_si512(b.add(p * NR).cast()),
                _mm512_loadu_si512(b.add(p * NR + 16).cast()),
            )
        };
        let (b0, b1): (__m512bh, __m512bh) = (
            std::mem::transmute::<__m512i, __m512bh>(b0),
            std::mem::transmute::<__m512i, __m512bh>(b1),
        );
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let pair = unsafe { *a.add(p * MR + r) } as i32;
            let broadcast = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair));
            row[0] = _mm512_dpbf16_ps(row[0], broadcast, b0);
            row[1] = _mm512_dpbf16_ps(row[1], broadcast, b1);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: `tile` holds MR rows of NR = 32 values.
        unsafe {
            _mm512_storeu_ps(tile.as_mut_ptr().add(r * NR), row[0]);
            _mm512_storeu_ps(tile.as_mut_ptr().add(r * NR + 16), row[1]);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn micro_tile(_: &[u32], _: &[u32], _: usize, _: &mut [f32; MR * NR]) {
    unreachable!("matmul checks available() first")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16_round(x: f32) -> f32 {
        half::bf16::from_f32(x).to_f32()
    }

    /// `A B` in f64 from the bf16-rounded operands, `a` `(m, k)` and `b`
    /// `(k, n)` row-major.
    fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let sum: f64 = (0..k)
                    .map(|p| {
                        f64::from(bf16_round(a[i * k + p])) * f64::from(bf16_round(b[p * n + j]))
                    })
                    .sum();
                c[i * n + j] = sum as f32;
            }
        }
        c
    }

    fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let mut t = vec![0f32; x.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = x[r * cols + c];
            }
        }
        t
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                ((i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) % 2001) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn products_of_every_layout_match_the_rounded_operands_product() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        // Odd sizes: partial tiles, partial panels and an odd k.
        for (m, k, n) in [
            (1, 1, 1),
            (13, 7, 45),
            (130, 64, 33),
            (9, 300, 70),
            (401, 20, 37),
            (200, 99, 500),
        ] {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let expected = reference(&a, &b, m, k, n);
            let a_t = transpose(&a, m, k);
            let b_t = transpose(&b, k, n);
            for (a_op, b_op) in [
                (
                    Operand::new(&a, Layout::OuterByK),
                    Operand::new(&b, Layout::KByOuter),
                ),
                (
                    Operand::new(&a_t, Layout::KByOuter),
                    Operand::new(&b_t, Layout::OuterByK),
                ),
            ] {
                let got = matmul(a_op, b_op, m, k, n);
                for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                        "{m}x{k}x{n} at {i}: {g} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_result_is_the_same_at_every_thread_count() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        let (m, k, n) = (300, 96, 100);
        let a = values(m * k, 3);
        let b = values(k * n, 4);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    matmul(
                        Operand::new(&a, Layout::OuterByK),
                        Operand::new(&b, Layout::KByOuter),
                        m,
                        k,
                        n,
                    )
                })
        };
        assert_eq!(run(1), run(3));
    }
}
