# Sourced by the bench scripts: prints the CPU every figure depends on
# (model, cores, and the vector extensions the kernels can pick at run
# time), since the machine's CPU can change from one session to the next.
cpu_line() {
  local model flags ext=()
  model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2-) "
  for f in avx2 fma avx512f avx512_bf16 avx512_fp16 amx_bf16; do
    [[ "$flags" == *" $f "* ]] && ext+=("$f")
  done
  echo "CPU: ${model:-unknown} ($(nproc) cores; ${ext[*]:-no AVX2})"
}
cpu_line
