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
//!
//! On CPUs with AMX (Intel Xeon since Sapphire Rapids) the same panels feed
//! the tile unit's `tdpbf16ps`, a 16x16x32 product per instruction, eight
//! times the multiply-adds of AVX-512 BF16 a cycle. Rust's AMX intrinsics
//! are not stable, so that micro-kernel is a few lines of inline assembly;
//! Linux lends a process the tile registers only on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), asked for once, before the first use.
//! `TEXT2SQL_BF16_KERNEL=avx512` keeps the AVX-512 kernel on such a CPU (to
//! compare the two).

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

/// The micro-kernel a product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 BF16 `vdpbf16ps`: a 12x32 tile in 24 vector registers.
    Avx512,
    /// AMX `tdpbf16ps`: a 32x32 tile in four 16x16 tile registers.
    Amx,
}

/// The kernels this CPU (and OS) can run, slowest first.
pub fn kernels() -> Vec<Kernel> {
    [Kernel::Avx512, Kernel::Amx]
        .into_iter()
        .filter(|&kernel| runs(kernel))
        .collect()
}

/// Whether this CPU (and OS) can run `kernel`.
fn runs(kernel: Kernel) -> bool {
    match kernel {
        Kernel::Avx512 => available(),
        Kernel::Amx => available() && amx::usable(),
    }
}

/// The kernel [`matmul`] picks: the fastest this CPU has, unless
/// `TEXT2SQL_BF16_KERNEL=avx512` asks for the AVX-512 one. `None` without
/// AVX-512 BF16.
pub fn kernel() -> Option<Kernel> {
    static CHOSEN: std::sync::OnceLock<Option<Kernel>> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let forced_avx512 = std::env::var("TEXT2SQL_BF16_KERNEL").is_ok_and(|v| v == "avx512");
        let kernels = kernels();
        if forced_avx512 {
            kernels.first().copied()
        } else {
            kernels.last().copied()
        }
    })
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
    let kernel = kernel().expect("bf16 products need AVX-512 BF16");
    matmul_on(kernel, a, b, m, k, n)
}

/// [`matmul`] on a given kernel. Panics as [`matmul`] does, and when the
/// kernel is not among [`kernels`].
pub fn matmul_on(kernel: Kernel, a: Operand, b: Operand, m: usize, k: usize, n: usize) -> Vec<f32> {
    assert_eq!(a.data.len(), m * k, "A is not (m, k)");
    assert_eq!(b.data.len(), k * n, "B is not (k, n)");
    assert!(
        runs(kernel),
        "this CPU cannot run the {kernel:?} bf16 kernel"
    );
    if m == 0 || n == 0 {
        return vec![0f32; m * n];
    }
    match kernel {
        Kernel::Avx512 => matmul_avx512(a, b, m, k, n),
        Kernel::Amx => amx::matmul(a, b, m, k, n),
    }
}

fn matmul_avx512(a: Operand, b: Operand, m: usize, k: usize, n: usize) -> Vec<f32> {
    let pairs = k.div_ceil(2);
    let a_packed = pack(a, m, k, MR, pairs);
    let b_packed = pack(b, n, k, NR, pairs);
    output_by_row_blocks(m, n, |row0, rows, c_block| {
        let mut tile = [0f32; MR * NR];
        for (col_panel, b_panel) in b_packed.chunks(pairs * NR).enumerate() {
            let col0 = col_panel * NR;
            for r in (0..rows).step_by(MR) {
                let a_panel = &a_packed[((row0 + r) / MR) * pairs * MR..][..pairs * MR];
                // SAFETY: `matmul_on` checked `available()`; the panels
                // hold `pairs` pairs of MR (NR) values each.
                unsafe { micro_tile(a_panel, b_panel, pairs, &mut tile) };
                write_tile(c_block, n, r, col0, &tile, NR, rows - r);
            }
        }
    })
}

/// C, `(m, n)` row-major, filled in parallel by `fill(first_row, rows,
/// block)` for blocks of [`MC`] rows; `fill` must write every value of its
/// block. C is not zeroed first (on the LM head's products that zeroing
/// alone costs a pass over 131 MB).
fn output_by_row_blocks(
    m: usize,
    n: usize,
    fill: impl Fn(usize, usize, &mut [std::mem::MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let mut c = Vec::with_capacity(m * n);
    c.spare_capacity_mut()[..m * n]
        .par_chunks_mut(MC * n)
        .enumerate()
        .for_each(|(block, c_block)| fill(block * MC, c_block.len() / n, c_block));
    // SAFETY: each block was written whole by `fill`, by its contract.
    unsafe { c.set_len(m * n) };
    c
}

/// Copies a row-major micro-tile `width` columns wide into the block of C
/// (rows `n` wide) at row `row`, column `col0`: the rows up to `rows_left`
/// and the columns up to C's edge.
fn write_tile(
    c_block: &mut [std::mem::MaybeUninit<f32>],
    n: usize,
    row: usize,
    col0: usize,
    tile: &[f32],
    width: usize,
    rows_left: usize,
) {
    let cols = width.min(n - col0);
    let rows = (tile.len() / width).min(rows_left);
    for (i, tile_row) in tile.chunks(width).take(rows).enumerate() {
        let at = (row + i) * n + col0;
        for (out, &value) in c_block[at..at + cols].iter_mut().zip(tile_row) {
            out.write(value);
        }
    }
}

/// Packs an operand with `outer` rows (columns) into panels of `width`:
/// per panel, per `k` pair, `width` u32s each holding the pair's two bf16
/// values (low half first), zero past `outer`, past an odd `k` and for the
/// pairs from `k`'s up to `padded_pairs`.
fn pack(op: Operand, outer: usize, k: usize, width: usize, padded_pairs: usize) -> Vec<u32> {
    let pairs = k.div_ceil(2);
    debug_assert!(padded_pairs >= pairs);
    let len = outer.div_ceil(width) * padded_pairs * width;
    let mut packed = Vec::with_capacity(len);
    packed.spare_capacity_mut()[..len]
        .par_chunks_mut(padded_pairs * width)
        .enumerate()
        .for_each(|(panel, dst)| {
            let first = panel * width;
            let count = width.min(outer - first);
            let (values, padding) = dst.split_at_mut(pairs * width);
            // SAFETY: `matmul_on` checked `available()`; `values` is one
            // panel's `pairs`.
            unsafe { pack_panel(op, outer, k, width, first, count, values) }
            for value in padding {
                value.write(0);
            }
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

/// The AMX kernel: the A operand packed as 16-row panels of 16x16 tiles
/// (row-major, `k` pairs along a row), B as [`pack`]'s 32-column panels,
/// both padded to whole 16-pair blocks, and a 32x32 output tile in four
/// tile registers.
mod amx {
    use super::{output_by_row_blocks, pack, write_tile, Operand};
    use rayon::prelude::*;

    /// Output rows and columns of one micro-tile: 2 x 2 tiles of 16 x 16.
    const TILE: usize = 32;
    /// `k` pairs per tile product (a tile row holds 64 bytes).
    const BLOCK_PAIRS: usize = 16;
    // A task's block of rows must hold whole micro-tiles.
    const _: () = assert!(super::MC.is_multiple_of(TILE));

    /// Whether the CPU has AMX tiles with bf16 and Linux granted this
    /// process their state (asked once; the grant covers every thread).
    pub(super) fn usable() -> bool {
        static USABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *USABLE.get_or_init(|| {
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            {
                // CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
                #[allow(unused_unsafe)]
                // SAFETY: CPUID leaf 7 exists on every x86-64 CPU with
                // AVX-512, which the callers checked first.
                let leaf = unsafe { std::arch::x86_64::__cpuid_count(7, 0) };
                if leaf.edx & (1 << 22) == 0 || leaf.edx & (1 << 24) == 0 {
                    return false;
                }
                const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
                const XFEATURE_XTILEDATA: libc::c_long = 18;
                // SAFETY: a plain system call with integer arguments.
                unsafe {
                    libc::syscall(
                        libc::SYS_arch_prctl,
                        ARCH_REQ_XCOMP_PERM,
                        XFEATURE_XTILEDATA,
                    ) == 0
                }
            }
            #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
            {
                false
            }
        })
    }

    pub(super) fn matmul(a: Operand, b: Operand, m: usize, k: usize, n: usize) -> Vec<f32> {
        let padded_pairs = k.div_ceil(2).div_ceil(BLOCK_PAIRS) * BLOCK_PAIRS;
        let blocks = padded_pairs / BLOCK_PAIRS;
        let a_panels = pack_a(a, m, k, padded_pairs);
        let b_panels = pack(b, n, k, TILE, padded_pairs);
        let a_panel_len = padded_pairs * 16;
        output_by_row_blocks(m, n, |row0, rows, c_block| {
            let _tiles = Tiles::configure();
            let mut tile = [0f32; TILE * TILE];
            for (col_panel, b_panel) in b_panels.chunks(padded_pairs * TILE).enumerate() {
                let col0 = col_panel * TILE;
                for r in (0..rows).step_by(TILE) {
                    let upper = (row0 + r) / 16;
                    let a_upper = &a_panels[upper * a_panel_len..][..a_panel_len];
                    // Past the last panel, the upper one again: its
                    // products land in rows that are not copied out.
                    let a_lower = a_panels
                        .get((upper + 1) * a_panel_len..(upper + 2) * a_panel_len)
                        .unwrap_or(a_upper);
                    if rows - r >= TILE && n - col0 >= TILE {
                        // A whole tile: stored straight into C.
                        let out = c_block[r * n + col0..].as_mut_ptr().cast::<f32>();
                        // SAFETY: `usable()` was checked by `matmul_on` and
                        // the tiles configured above; each A panel holds
                        // `blocks` tiles of 16 x 16 u32, the B panel
                        // `blocks` blocks of 16 x 32 u32; C's block holds
                        // rows `r..r + 32` of `n` values, of which columns
                        // `col0..col0 + 32` are written.
                        unsafe { micro_tile(a_upper, a_lower, b_panel, blocks, out, n) };
                        continue;
                    }
                    // SAFETY: as above; `tile` holds 32 rows of 32.
                    unsafe {
                        micro_tile(a_upper, a_lower, b_panel, blocks, tile.as_mut_ptr(), TILE)
                    };
                    write_tile(c_block, n, r, col0, &tile, TILE, rows - r);
                }
            }
        })
    }

    /// A in 16-row panels; per panel `padded_pairs / 16` tiles of 16 rows
    /// by 16 pairs, each row-major (a tile register's layout). Built from
    /// [`pack`]'s pair-major panels by transposing each 16 x 16 block.
    fn pack_a(a: Operand, m: usize, k: usize, padded_pairs: usize) -> Vec<u32> {
        let mut panels = pack(a, m, k, 16, padded_pairs);
        panels.par_chunks_mut(16 * 16).for_each(|block| {
            // SAFETY: AVX-512 F comes with the AMX CPUs `usable()` admits;
            // the block holds 256 u32.
            unsafe { transpose_block(block) }
        });
        panels
    }

    /// Transposes 16 x 16 u32 in place.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F; `block` holds 256 values.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose_block(block: &mut [u32]) {
        use std::arch::x86_64::*;
        debug_assert_eq!(block.len(), 256);
        let mut rows = [_mm512_setzero_si512(); 16];
        for (i, row) in rows.iter_mut().enumerate() {
            // SAFETY: within the block.
            *row = unsafe { _mm512_loadu_si512(block.as_ptr().add(16 * i).cast()) };
        }
        super::transpose16(&mut rows);
        for (i, row) in rows.iter().enumerate() {
            // SAFETY: within the block.
            unsafe { _mm512_storeu_si512(block.as_mut_ptr().add(16 * i).cast(), *row) };
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn transpose_block(_: &mut [u32]) {
        unreachable!("matmul_on checks usable() first")
    }

    /// The tile registers configured as eight 16 x 64-byte tiles for as
    /// long as it lives; released on drop so that the thread does not
    /// carry 8 KiB of tile state through every context switch.
    struct Tiles;

    impl Tiles {
        fn configure() -> Tiles {
            // The 64-byte `ldtilecfg` operand: palette 1, then each tile's
            // bytes per row (u16 from byte 16) and rows (u8 from byte 48).
            #[repr(C, align(64))]
            struct Config([u8; 64]);
            let mut config = Config([0; 64]);
            config.0[0] = 1;
            for tile in 0..8 {
                config.0[16 + 2 * tile] = 64;
                config.0[48 + tile] = 16;
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `usable()` holds (checked by `matmul_on`): the CPU
            // has AMX and the process may use its state; the operand is
            // a valid palette-1 configuration.
            unsafe {
                std::arch::asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack));
            }
            Tiles
        }
    }

    impl Drop for Tiles {
        fn drop(&mut self) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the tiles were configured by `configure`.
            unsafe {
                std::arch::asm!("tilerelease", options(nostack, nomem));
            }
        }
    }

    /// `out = [A_upper; A_lower] B_panel`: 32 x 32 f32 written to 32 rows
    /// `out_stride` values apart, over `blocks` blocks of 16 pairs.
    ///
    /// # Safety
    /// The tiles must be configured ([`Tiles`]); each A panel holds
    /// `blocks * 256` and the B panel `blocks * 512` u32, `blocks >= 1`;
    /// `out` is valid for writes of 32 values at each of 32 rows
    /// `out_stride` apart.
    #[cfg(target_arch = "x86_64")]
    unsafe fn micro_tile(
        a_upper: &[u32],
        a_lower: &[u32],
        b: &[u32],
        blocks: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        debug_assert!(blocks >= 1);
        debug_assert!(a_upper.len() >= blocks * 256 && a_lower.len() >= blocks * 256);
        debug_assert!(b.len() >= blocks * 512);
        // tmm0..3: the output's four 16 x 16 quarters; tmm4/5 the upper and
        // lower A tiles of a block, tmm6/7 B's left and right columns
        // (rows 128 bytes apart in the 32-column panel).
        // SAFETY: by the caller's contract every load stays within the
        // panels and the stores within `out`'s rows.
        unsafe {
            std::arch::asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                "2:",
                "tileloadd tmm4, [{a0} + {s64}*1]",
                "tileloadd tmm6, [{b} + {s128}*1]",
                "tileloadd tmm7, [{b} + {s128}*1 + 64]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tileloadd tmm5, [{a1} + {s64}*1]",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "add {a0}, 1024",
                "add {a1}, 1024",
                "add {b}, 2048",
                "dec {blocks}",
                "jnz 2b",
                "tilestored [{out} + {stride}*1], tmm0",
                "tilestored [{out} + {stride}*1 + 64], tmm1",
                "tilestored [{lower} + {stride}*1], tmm2",
                "tilestored [{lower} + {stride}*1 + 64], tmm3",
                a0 = inout(reg) a_upper.as_ptr() => _,
                a1 = inout(reg) a_lower.as_ptr() => _,
                b = inout(reg) b.as_ptr() => _,
                blocks = inout(reg) blocks => _,
                out = in(reg) out,
                lower = in(reg) out.wrapping_add(16 * out_stride),
                stride = in(reg) out_stride * 4,
                s64 = in(reg) 64usize,
                s128 = in(reg) 128usize,
                options(nostack),
            );
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn micro_tile(_: &[u32], _: &[u32], _: &[u32], _: usize, _: *mut f32, _: usize) {
        unreachable!("matmul_on checks usable() first")
    }
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
            (47, 65, 33),
            (250, 130, 64),
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
                for kernel in kernels() {
                    let got = matmul_on(kernel, a_op, b_op, m, k, n);
                    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                        assert!(
                            (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                            "{kernel:?} {m}x{k}x{n} at {i}: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_cpu_with_amx_gets_the_amx_kernel() {
        let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let has = |flag: &str| {
            flags
                .lines()
                .find(|line| line.starts_with("flags"))
                .is_some_and(|line| line.split_whitespace().any(|f| f == flag))
        };
        if !(has("amx_bf16") && has("amx_tile") && has("avx512_bf16")) {
            eprintln!("skipped: this CPU has no AMX");
            return;
        }
        assert!(kernels().contains(&Kernel::Amx), "{:?}", kernels());
        if std::env::var_os("TEXT2SQL_BF16_KERNEL").is_none() {
            assert_eq!(kernel(), Some(Kernel::Amx));
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
        for kernel in kernels() {
            let run = |threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| {
                        matmul_on(
                            kernel,
                            Operand::new(&a, Layout::OuterByK),
                            Operand::new(&b, Layout::KByOuter),
                            m,
                            k,
                            n,
                        )
                    })
            };
            assert_eq!(run(1), run(3), "{kernel:?}");
        }
    }
}
