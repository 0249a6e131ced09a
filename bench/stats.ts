/** Small helpers for benchmarks: percentiles and aligned output. */

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

export function summarize (samples: number[]): { p50: number, p99: number, mean: number, n: number } {
  const s = [...samples].sort((a, b) => a - b)
  return { p50: percentile(s, 50), p99: percentile(s, 99), mean: s.reduce((a, b) => a + b, 0) / s.length, n: s.length }
}

export function row (label: string, value: string, floor = ''): void {
  console.log(`  ${label.padEnd(52)} ${value.padStart(14)}${floor === '' ? '' : `   ${floor}`}`)
}

export function ratio (value: number, floor: number): string {
  return `(floor ${floor}; ${(value / floor).toFixed(1)}x)`
}
