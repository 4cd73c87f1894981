// The page's table of a generation's stage times (median UNet step, totals).

/**
 * Fill the timings table's body with a generation's stage times.
 * @param {HTMLTableElement} table
 * @param {import("./sd_pipeline.js").Timings} t
 * @param {number} vaeTiles
 */
export function showTimings(table, t, vaeTiles) {
  const sorted = [...t.unetStepMs].sort((a, b) => a - b);
  const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
  const rows = [
    ["text encoder (2 prompts)", t.textEncoderMs],
    [`UNet step, median of ${sorted.length}`, median],
    ["UNet steps, total", t.unetStepMs.reduce((a, b) => a + b, 0)],
    [vaeTiles > 0 ? `VAE decode (${vaeTiles} tiles)` : "VAE decode", t.vaeMs],
    ["total", t.totalMs],
  ];
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const [name, ms] of rows) {
    const row = body.insertRow();
    row.insertCell().textContent = String(name);
    const cell = row.insertCell();
    cell.className = "num";
    cell.textContent = `${Number(ms).toFixed(1)} ms`;
  }
}
