// The LoRA panel: LoRA files chosen (or dropped on the panel), each with a
// scale and a remove button. A file is read and matched to the loaded build
// when chosen: one that does not fit is refused with one line and the list is
// left as it was. The LoRAs are merged into the weights when a generation
// starts (lora.js), so changing a scale or removing one costs nothing until then.

/** @typedef {import("./lora.js").ActiveLora} ActiveLora */
/** @typedef {import("./sd_model.js").SDModel} SDModel */

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));

/** @type {{lora: import("./lora.js").Lora, scale: number, input: HTMLInputElement}[]} */
const chosen = [];

/** The LoRAs listed, in order, with the scales set now. */
export function lorasNow() {
  return chosen.map(({ lora, input }) => ({ lora, scale: Number(input.value) }));
}

/**
 * Read a LoRA file and list it (the error, one line, is shown and thrown when it does not fit).
 * @param {SDModel} model
 * @param {Blob & {name?: string}} file
 * @param {number} [scale]
 */
export async function addLora(model, file, scale = 1) {
  $("lora-error").textContent = "";
  try {
    const lora = model.readLora(new Uint8Array(await file.arrayBuffer()), file.name ?? "LoRA");
    const row = document.createElement("li");
    const name = Object.assign(document.createElement("span"), { textContent: `${lora.name} ` });
    /** @type {HTMLInputElement} */
    const input = Object.assign(document.createElement("input"), { type: "number", step: "0.05", value: String(scale), title: "Scale" });
    input.setAttribute("aria-label", `Scale of ${lora.name}`);
    const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "Remove" });
    const entry = { lora, scale, input };
    remove.addEventListener("click", () => {
      chosen.splice(chosen.indexOf(entry), 1);
      row.remove();
    });
    row.append(name, input, remove);
    $("lora-list").append(row);
    chosen.push(entry);
  } catch (e) {
    $("lora-error").textContent = e instanceof Error ? e.message : String(e);
    throw e;
  }
}

/** Forget the listed LoRAs (a new build was loaded: they were matched to the old one). */
export function clearLoras() {
  chosen.length = 0;
  $("lora-list").replaceChildren();
  $("lora-error").textContent = "";
}

/**
 * Wire the panel's file input and drop target.
 * @param {() => Promise<SDModel>} modelNow  The loaded model.
 */
export function wireLoraPanel(modelNow) {
  const add = (/** @type {Blob} */ file) => modelNow().then((m) => addLora(m, file)).catch(() => {});
  $("lora-file").addEventListener("change", () => {
    for (const file of Array.from(/** @type {FileList} */ ($("lora-file").files ?? []))) add(file);
    $("lora-file").value = "";
  });
  $("lora-panel").addEventListener("dragover", (/** @type {DragEvent} */ e) => e.preventDefault());
  $("lora-panel").addEventListener("drop", (/** @type {DragEvent} */ e) => {
    e.preventDefault();
    for (const file of Array.from(e.dataTransfer?.files ?? [])) add(file);
  });
}
