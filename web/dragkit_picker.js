// ComfyUI registration of the DragKit Point Picker: a DOM widget hosting the editor (web/dragkit/),
// bound to the node's hidden `editor_state` STRING widget, which carries the state to Python.
import { PickerEditor } from "./dragkit/editor.js";

const comfy = window.comfyAPI;
const { app } = comfy?.app ?? (await import("../../scripts/app.js"));
const { api } = comfy?.api ?? (await import("../../scripts/api.js"));

const NODE_TYPE = "DragKitPointPicker";
const STATE_WIDGET = "editor_state";
// DragKit Example Image reads its pictures from web/examples, which ComfyUI serves beside this file.
const EXAMPLE_TYPE = "DragKitExampleImage";
const exampleUrl = (name) => new URL(`./examples/${encodeURIComponent(name)}`, import.meta.url).href;

const viewUrl = ({ filename, subfolder = "", type = "input" }, bust = false) =>
  api.apiURL(`/view?${new URLSearchParams({ filename, subfolder, type, ...(bust ? { rand: String(Math.random()) } : {}) })}`);

/** The link into input `slot`: getInputLink() where the frontend has it (1.58 deprecates reading
 * `input.link`), else the graph's link table. */
function inputLink(node, slot) {
  if (typeof node.getInputLink === "function") return node.getInputLink(slot);
  const id = node.inputs?.[slot]?.link;
  const links = node.graph?.links;
  return id == null ? null : links?.get?.(id) ?? links?.[id] ?? null;
}

/** The picture feeding `image` before anything runs: Load Image's file or a DragKit example, through
 * legacy Reroute nodes. */
function upstreamPicture(node) {
  let [target, slot] = [node, node.inputs?.findIndex((i) => i.name === "image") ?? -1];
  for (let hop = 0; hop < 16 && slot >= 0; hop++) {
    const link = inputLink(target, slot);
    const source = link ? target.graph?.getNodeById(link.origin_id) : null;
    if (!source) return null;
    if (source.type === "Reroute") {
      [target, slot] = [source, 0];
      continue;
    }
    if (source.type === EXAMPLE_TYPE) {
      const widget = source.widgets?.find((w) => w.name === "example");
      return typeof widget?.value === "string" && widget.value ? { key: widget.value, url: exampleUrl(widget.value), widget } : null;
    }
    const widget = source.widgets?.find((w) => w.name === "image");
    if (typeof widget?.value === "string" && widget.value) {
      // "sub/dir/name.png [output]" -> subfolder "sub/dir", filename "name.png", type "output".
      const [, path, type] = /^(.*?)(?:\s*\[(input|output|temp)\])?$/.exec(widget.value);
      const parts = path.split("/");
      const file = { filename: parts.pop(), subfolder: parts.join("/"), type: type ?? "input" };
      return { key: widget.value, url: viewUrl(file), widget };
    }
    const src = source.imgs?.[0]?.src; // any other node: its preview, once it has run
    return src ? { key: src, url: src, widget: null } : null;
  }
  return null;
}

// Several pickers may watch one Load Image: its combo's callback is wrapped once and fans out.
const widgetWatchers = new WeakMap();
// Let ComfyUI's undo history see an editor change now: its change tracker otherwise looks only on
// window mouseup/keyup, which the editor keeps to itself while it is being used. Current frontends
// call it captureCanvasState() (1.58 logs a deprecation warning for checkState()); older ones only
// have checkState().
function recordUndoStep() {
  const tracker = app.extensionManager?.workflow?.activeWorkflow?.changeTracker;
  if (typeof tracker?.captureCanvasState === "function") tracker.captureCanvasState();
  else tracker?.checkState?.();
}

function watchWidget(widget, onChange) {
  let watchers = widgetWatchers.get(widget);
  if (!watchers) {
    widgetWatchers.set(widget, (watchers = new Set()));
    const original = widget.callback;
    widget.callback = function (...args) {
      const result = original?.apply(this, args);
      for (const watcher of watchers) watcher();
      return result;
    };
  }
  watchers.add(onChange);
  return () => watchers.delete(onChange);
}

// The Vue node renderer mounts a DOM widget's element once per (node id, widget name) and keeps it when
// the node is replaced by a new one with the same id, as ComfyUI's undo does: the new editor would
// never show. So a removed picker leaves its host behind here, and the picker that takes its id moves
// into that spot. (The canvas renderer mounts each widget anew and never needs it.)
const vacated = new WeakMap(); // graph -> Map(node id -> host element still in the page)

function takeOverVacatedSpot(node, host) {
  const spots = node.graph && vacated.get(node.graph);
  const old = spots?.get(node.id);
  spots?.delete(node.id);
  if (!host.isConnected && old?.isConnected) old.replaceWith(host);
}

function chain(object, name, after) {
  const before = object[name];
  object[name] = function (...args) {
    const result = before?.apply(this, args);
    after.apply(this, args);
    return result;
  };
}

app.registerExtension({
  name: "dragkit.PointPicker",
  nodeCreated(node) {
    if (node.comfyClass !== NODE_TYPE) return;
    const stateWidget = node.widgets?.find((w) => w.name === STATE_WIDGET);
    if (!stateWidget) return;
    // Hidden in the canvas renderer (hidden), the Vue one (options.hidden) and older litegraph (computeSize).
    stateWidget.hidden = true;
    if (stateWidget.options) stateWidget.options.hidden = true;
    stateWidget.computeSize = () => [0, -4];

    const host = document.createElement("div");
    const editor = new PickerEditor(host, {
      undoShortcut: false, // ComfyUI's Ctrl+Z (a capturing window listener) already undoes widget changes
      onChange: (text) => {
        stateWidget.value = text;
        node.setDirtyCanvas?.(true, false);
        recordUndoStep();
      },
    });
    editor.load(stateWidget.value);
    const domWidget = node.addDOMWidget("dragkit_editor", "dragkit_point_picker", host, {
      serialize: false, // not in the API prompt ...
      hideOnZoom: false,
      getValue: () => editor.value(),
      setValue: (text) => editor.load(text),
      getMinHeight: () => 320,
    });
    domWidget.serialize = false; // ... nor in widgets_values: editor_state holds the state
    node.setSize?.([Math.max(node.size[0], 440), Math.max(node.size[1], 560)]);

    // The picture: Load Image's file before a run, the node's own background after one.
    let upstreamKey = null;
    let unwatch = null;
    const refresh = () => {
      const picture = upstreamPicture(node);
      unwatch?.();
      unwatch = picture?.widget ? watchWidget(picture.widget, () => setTimeout(refresh, 0)) : null;
      if ((picture?.key ?? null) === upstreamKey) return;
      upstreamKey = picture?.key ?? null;
      if (picture) editor.setImage(picture.url);
    };
    chain(stateWidget, "callback", (text) => text !== editor.value() && editor.load(text));
    chain(node, "onConfigure", () => {
      editor.load(stateWidget.value); // widget values are restored by now; other nodes maybe not
      setTimeout(() => {
        takeOverVacatedSpot(node, host);
        refresh();
      }, 0);
    });
    chain(node, "onConnectionsChange", () => setTimeout(refresh, 0));
    chain(node, "onExecuted", (output) => {
      const background = output?.dragkit_background?.[0];
      if (background) editor.setImage(viewUrl({ type: "temp", ...background }, true));
    });
    chain(node, "onRemoved", () => {
      unwatch?.();
      editor.destroy();
      if (node.graph && host.isConnected) {
        if (!vacated.has(node.graph)) vacated.set(node.graph, new Map());
        const spots = vacated.get(node.graph);
        for (const [id, old] of spots) if (!old.isConnected) spots.delete(id); // gone from the page anyway
        spots.set(node.id, host);
      }
    });
    setTimeout(refresh, 0);
  },
});
