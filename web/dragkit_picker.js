// ComfyUI registration of the DragKit Point Picker: a DOM widget hosting the editor, bound to the
// node's `editor_state` STRING widget. The editor itself (web/dragkit/) knows nothing of ComfyUI.
import { PointEditor } from "./dragkit/editor.js";

const comfy = window.comfyAPI;
const app = comfy?.app?.app ?? (await import("../../scripts/app.js")).app;
const api = comfy?.api?.api ?? (await import("../../scripts/api.js")).api;

const NODE = "DragKitPointPicker";

function viewUrl({ filename, subfolder = "", type = "input" }) {
  const query = new URLSearchParams({ filename, subfolder, type, rand: String(Math.random()) });
  return api.apiURL(`/view?${query}`);
}

/** The picture of the node feeding `image`, before anything runs (Load Image's file). */
function upstreamImageUrl(node) {
  const input = node.inputs?.find((i) => i.name === "image");
  const link = input?.link != null ? app.graph.links[input.link] ?? app.graph.links.get?.(input.link) : null;
  const source = link ? app.graph.getNodeById(link.origin_id) : null;
  if (!source) return null;
  const widget = source.widgets?.find((w) => w.name === "image");
  if (widget?.value) {
    // "sub/name.png [output]" -> subfolder "sub", filename "name.png", type "output" (default "input").
    const [, path, folder] = /^(.*?)(?: \[(\w+)\])?$/.exec(String(widget.value));
    const parts = path.split("/");
    return viewUrl({ filename: parts.pop(), subfolder: parts.join("/"), type: folder || "input" });
  }
  return source.imgs?.[0]?.src ?? null;
}

app.registerExtension({
  name: "dragkit.PointPicker",
  nodeCreated(node) {
    if (node.comfyClass !== NODE) return;
    const stateWidget = node.widgets?.find((w) => w.name === "editor_state");
    if (!stateWidget) return;
    stateWidget.hidden = true;
    stateWidget.computeSize = () => [0, -4];

    const container = document.createElement("div");
    const editor = new PointEditor(container, {
      onChange: (text) => {
        stateWidget.value = text;
        node.setDirtyCanvas?.(true, true);
      },
    });
    editor.load(stateWidget.value);
    node.addDOMWidget("dragkit_editor", "dragkit-point-editor", container, {
      serialize: false,
      getMinHeight: () => 320,
    });
    node.setSize?.([Math.max(node.size[0], 420), Math.max(node.size[1], 480)]);

    const refreshImage = () => editor.setImage(upstreamImageUrl(node));
    const onConfigure = node.onConfigure;
    node.onConfigure = function (info) {
      onConfigure?.apply(this, arguments);
      editor.load(stateWidget.value); // widget values are restored by now
      refreshImage();
    };
    const onConnectionsChange = node.onConnectionsChange;
    node.onConnectionsChange = function () {
      onConnectionsChange?.apply(this, arguments);
      refreshImage();
    };
    const onExecuted = node.onExecuted;
    node.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const background = message?.dragkit_background?.[0];
      if (background) editor.setImage(viewUrl(background));
    };
    const onRemoved = node.onRemoved;
    node.onRemoved = function () {
      editor.destroy();
      onRemoved?.apply(this, arguments);
    };
    // Follow the Load Image combo: a new file shows at once.
    api.addEventListener?.("graphChanged", refreshImage);
    setTimeout(refreshImage, 0);
  },
});
