// The chat: a `list` of messages, each a map value {author, color, text,
// time} (the time is the writer's clock, as the writer supplies it).
// Appends from two replicas at once both stay, in one order everywhere.
import { $, el, clockText } from "./ui.js";

const SHOWN = 200;

export function mountChat(replica, { chat, write, me }) {
  function render() {
    const all = replica.read([chat])[0];
    const box = $("messages");
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.replaceChildren(...all.slice(-SHOWN).map((m) => {
      const msg = m && typeof m === "object" ? m : { text: String(m) };
      return el("li", { className: "message" },
        el("span", { className: "author", textContent: String(msg.author ?? "?"), style: `color: ${/^#[0-9a-f]{6}$/i.test(msg.color) ? msg.color : "#555"}` }),
        el("span", { className: "time", textContent: clockText(msg.time) }),
        el("span", { className: "text", textContent: String(msg.text ?? "") }));
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
