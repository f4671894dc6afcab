// The to-do list: a `list` of item ids gives the order; each item is a
// `map_rr` with a title (`register_mv`: concurrent titles are kept side by
// side until someone picks one), done (`flag_ew`: enable wins) and tags
// (`set_aw`). Reordering is a delete and an insert in one transaction.
import { $, el, str } from "./ui.js";

const TITLE = ["title", "register_mv"];
const DONE = ["done", "flag_ew"];
const TAGS = ["tags", "set_aw"];

export function mountTodos(replica, { order, bucket, write }) {
  const itemKey = (id) => [`todo:${id}`, "map_rr", bucket];
  let counter = 0;

  function ids() {
    const seen = new Set();
    // Two replicas moving one item at once leave two copies of its id:
    // the first one counts (every replica sees the same first).
    return replica.read([order])[0].filter((id) => typeof id === "string" && !seen.has(id) && seen.add(id));
  }

  function indexOf(id) {
    return replica.read([order])[0].indexOf(id);
  }

  function add(title) {
    const id = `${replica.id}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
    const len = replica.read([order])[0].length;
    write([
      [order, "insert", [len, id]],
      [itemKey(id), "update", [TITLE, "assign", title]],
    ]);
  }

  function move(id, by) {
    const list = ids();
    const at = list.indexOf(id);
    const to = at + by;
    if (at < 0 || to < 0 || to >= list.length) return;
    // Raw positions (duplicates included). Down: after the delete the next
    // item sits one lower, so inserting at its old index puts this one
    // after it; up: the previous item does not move, so this one lands
    // before it. One transaction, so nobody sees the item missing.
    const raw = replica.read([order])[0];
    write([
      [order, "delete", [raw.indexOf(id), 1]],
      [order, "insert", [raw.indexOf(list[to]), id]],
    ]);
  }

  function remove(id) {
    const at = indexOf(id);
    if (at < 0) return;
    write([[order, "delete", [at, 1]], [itemKey(id), "reset"]]);
  }

  function render() {
    const list = ids();
    const items = list.length ? replica.read(list.map(itemKey)) : [];
    $("todos").replaceChildren(...list.map((id, i) => {
      const v = items[i] && typeof items[i] === "object" ? items[i] : {};
      const titles = Array.isArray(v.title) ? v.title : [];
      const tags = Array.isArray(v.tags) ? v.tags : [];
      const key = itemKey(id);
      const done = v.done === true;
      const titleBox = el("div", { className: "todo-title" },
        ...titles.map((t) => el("span", { className: "todo-text", textContent: str(t) },
          titles.length > 1 ? el("button", {
            className: "pick", textContent: "pick", title: "keep this title",
            onclick: () => write([[key, "update", [TITLE, "assign", t]]]),
          }) : null)),
        titles.length > 1 ? el("span", { className: "conflict", textContent: `${titles.length} concurrent titles` }) : null,
        titles.length === 0 ? el("span", { className: "small", textContent: "(untitled)" }) : null);
      return el("li", { className: `todo${done ? " done" : ""}`, dataset: { id } },
        el("input", {
          type: "checkbox", checked: done, title: "done",
          onchange: (e) => write([[key, "update", [DONE, e.target.checked ? "enable" : "disable"]]]),
        }),
        titleBox,
        el("span", { className: "tags" }, ...tags.map((t) => el("button", {
          className: "tag", textContent: `#${str(t)}`, title: "remove tag",
          onclick: () => write([[key, "update", [TAGS, "remove", t]]]),
        }))),
        el("span", { className: "actions" },
          el("button", { className: "icon", textContent: "✎", title: "rename", onclick: () => {
            const t = prompt("New title", titles.length ? str(titles[0]) : "");
            if (t && t.trim()) write([[key, "update", [TITLE, "assign", t.trim()]]]);
          } }),
          el("button", { className: "icon", textContent: "#", title: "add a tag", onclick: () => {
            const t = prompt("Tag");
            if (t && t.trim()) write([[key, "update", [TAGS, "add", t.trim()]]]);
          } }),
          el("button", { className: "icon up", textContent: "↑", title: "move up", disabled: i === 0, onclick: () => move(id, -1) }),
          el("button", { className: "icon down", textContent: "↓", title: "move down", disabled: i === list.length - 1, onclick: () => move(id, 1) }),
          el("button", { className: "icon delete", textContent: "✕", title: "delete", onclick: () => remove(id) })));
    }));
    $("todo-count").textContent = `${list.filter((_, i) => items[i]?.done !== true).length} open of ${list.length}`;
  }

  $("todo-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = $("todo-input").value.trim();
    if (t) add(t);
    $("todo-input").value = "";
  });

  return { render, add, move, remove, ids, itemKey };
}
