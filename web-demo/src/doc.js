// The shared document: a `text` object in CodeMirror 6, through the
// binding the npm package ships (minidote/codemirror), with the cursors of
// the other replicas in the room.
import { EditorView, keymap, lineNumbers, highlightActiveLine, drawSelection } from "@codemirror/view";
import { EditorState } from "@codemirror/state";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { minidoteText } from "minidote/codemirror";

/** `presence`: `{ key, name, color }` (read each time the cursor is shared,
 * so a getter for `name` follows renames). */
export function mountDocument(replica, { doc, presence, parent }) {
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: replica.read([doc])[0],
      extensions: [
        lineNumbers(),
        history(),
        drawSelection(),
        highlightActiveLine(),
        EditorView.lineWrapping,
        keymap.of([...defaultKeymap, ...historyKeymap]),
        minidoteText(replica, doc, { presence }),
      ],
    }),
  });
  return view;
}
