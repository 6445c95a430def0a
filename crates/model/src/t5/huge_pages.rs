//! Inference weights on 2 MiB pages.
//!
//! Decoding one token streams every decoder weight and the vocabulary
//! projection (about 150 MB at the t5-small shape) through the CPU. On 4 KiB
//! pages that is one TLB miss per 4 KiB read: measured here, a 66 MB
//! matrix-vector product took 3.1 ms on 4 KiB pages and 1.9 ms on 2 MiB
//! pages. Linux only hands out 2 MiB pages to memory that asks for them
//! (`transparent_hugepage=madvise`, the common default), so large CPU
//! weights are copied into fresh buffers that ask before they are first
//! written. Other platforms and devices keep the tensors as they are.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// Tensors smaller than one huge page gain nothing.
const HUGE_PAGE: usize = 2 << 20;

/// The same tensors, large CPU f32 ones moved to buffers backed by huge pages
/// where the operating system allows it. Values are unchanged.
pub(crate) fn on_huge_pages(tensors: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    tensors
        .into_iter()
        .map(|(name, tensor)| Ok((name, tensor_on_huge_pages(tensor)?)))
        .collect()
}

fn tensor_on_huge_pages(tensor: Tensor) -> Result<Tensor> {
    if !cfg!(target_os = "linux")
        || !matches!(tensor.device(), Device::Cpu)
        || tensor.dtype() != DType::F32
        || tensor.elem_count() * 4 < HUGE_PAGE
    {
        return Ok(tensor);
    }
    let values = tensor.flatten_all()?.to_vec1::<f32>()?;
    let mut buffer = Vec::<f32>::with_capacity(values.len());
    advise_huge_pages(buffer.as_mut_ptr().cast(), buffer.capacity() * 4);
    buffer.extend_from_slice(&values);
    Ok(Tensor::from_vec(buffer, tensor.shape(), &Device::Cpu)?)
}

/// Asks for huge pages over the 2 MiB-aligned part of `[start, start + len)`.
/// Advice only: refusal (an old kernel, THP disabled) costs nothing.
#[cfg(target_os = "linux")]
fn advise_huge_pages(start: *mut u8, len: usize) {
    let address = start as usize;
    let first = address.next_multiple_of(HUGE_PAGE);
    let end = (address + len) / HUGE_PAGE * HUGE_PAGE;
    if end > first {
        // SAFETY: the range lies inside an allocation this process owns and
        // MADV_HUGEPAGE changes no contents, only how pages are backed.
        unsafe {
            libc::madvise(
                start.add(first - address).cast(),
                end - first,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: *mut u8, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_names_and_shapes_survive_the_move() {
        let device = Device::Cpu;
        let large = Tensor::randn(0f32, 1.0, (1100, 512), &device).unwrap();
        let small = Tensor::randn(0f32, 1.0, (4, 8), &device).unwrap();
        let moved = on_huge_pages(HashMap::from([
            ("large".to_string(), large.clone()),
            ("small".to_string(), small.clone()),
        ]))
        .unwrap();
        assert_eq!(moved["large"].dims(), &[1100, 512]);
        assert_eq!(
            moved["large"].to_vec2::<f32>().unwrap(),
            large.to_vec2::<f32>().unwrap()
        );
        assert_eq!(
            moved["small"].to_vec2::<f32>().unwrap(),
            small.to_vec2::<f32>().unwrap()
        );
    }
}
