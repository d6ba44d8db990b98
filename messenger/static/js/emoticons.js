// Emoticon codes rendered as images, with the table served by the worker (GET /api/emoticons).

let table = [];

export async function loadEmoticons(call) {
  table = await call("GET", "/api/emoticons");
  return table;
}

export function emoticonTable() { return table; }

// Text with emoticon codes -> a DocumentFragment (text nodes and <img>, never innerHTML).
export function render(text) {
  const out = document.createDocumentFragment();
  let buf = "";
  let i = 0;
  outer: while (i < text.length) {
    for (const e of table) {
      // Compare slices of the text itself: upper-casing it whole shifts indexes ("ß" -> "SS").
      if (text.slice(i, i + e.code.length).toUpperCase() === e.code.toUpperCase()) {
        if (buf) { out.append(buf); buf = ""; }
        const img = document.createElement("img");
        img.src = e.image; img.alt = e.code; img.title = e.label; img.className = "emo";
        out.append(img);
        i += e.code.length;
        continue outer;
      }
    }
    buf += text[i];
    i += 1;
  }
  if (buf) out.append(buf);
  return out;
}
