// The chat: a `list` of messages, each a map value {author, color, text,
// time} (the time is the writer's clock, as the writer supplies it).
// Appends from two replicas at once both stay, in one order everywhere.
import { $, el, clockText, str } from "./ui.js";

const SHOWN = 200;

export function mountChat(replica, { chat, write, me }) {
  function render() {
    const all = replica.read([chat])[0];
    const box = $("messages");
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.replaceChildren(...all.slice(-SHOWN).map((m) => {
      // Whatever a peer stored renders as text, whatever its shape.
      const msg = m && typeof m === "object" && !(m instanceof Uint8Array) ? m : { text: m };
      const color = typeof msg.color === "string" && /^#[0-9a-f]{6}$/i.test(msg.color) ? msg.color : "#555";
      return el("li", { className: "message" },
        el("span", { className: "author", textContent: str(msg.author ?? "?").slice(0, 40), style: `color: ${color}` }),
        el("span", { className: "time", textContent: clockText(msg.time) }),
        el("span", { className: "text", textContent: str(msg.text ?? "") }));
    }));
    if (atBottom) box.scrollTop = box.scrollHeight;
    $("chat-count").textContent = `${all.length} message${all.length === 1 ? "" : "s"}`;
  }

  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("chat-input").value.trim();
    if (!text) return;
    const len = replica.read([chat])[0].length;
    const { name, color } = me();
    write([[chat, "insert", [len, { author: name, color, text, time: Date.now() }]]]);
    $("chat-input").value = "";
  });

  return { render };
}
