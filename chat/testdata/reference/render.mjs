// Renders every template in ../templates with every conversation in
// ../conversations.json using @huggingface/jinja, the reference the Go
// renderer is compared with, and writes ../rendered/<template>.json
// (conversation name -> rendered prompt). Usage: node render.mjs [outdir]
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from "node:fs";
import { join, dirname, basename } from "node:path";
import { fileURLToPath } from "node:url";
import { Template } from "@huggingface/jinja";

const here = dirname(fileURLToPath(import.meta.url));
const testdata = join(here, "..");
const outdir = process.argv[2] ?? join(testdata, "rendered");
mkdirSync(outdir, { recursive: true });

// the data qwend hands a template (chat.Template.Render): developer read
// as system, tool-call arguments parsed, tools as sent
function templateData(conv) {
  const messages = conv.messages.map((m) => {
    const out = { role: m.role === "developer" ? "system" : m.role, content: m.content };
    if (m.tool_calls?.length) {
      out.tool_calls = m.tool_calls.map((c) => {
        const call = {};
        if (c.id) call.id = c.id;
        call.type = "function";
        call.function = { name: c.name, arguments: c.arguments.trim() === "" ? {} : JSON.parse(c.arguments) };
        return call;
      });
    }
    if (m.tool_call_id) out.tool_call_id = m.tool_call_id;
    if (m.name) out.name = m.name;
    return out;
  });
  const data = { messages, add_generation_prompt: true };
  if (conv.tools?.length) data.tools = conv.tools;
  return data;
}

const conversations = JSON.parse(readFileSync(join(testdata, "conversations.json"), "utf8"));
const tdir = join(testdata, "templates");
for (const f of readdirSync(tdir).filter((f) => f.endsWith(".jinja")).sort()) {
  const tmpl = new Template(readFileSync(join(tdir, f), "utf8"));
  const out = {};
  for (const c of conversations) out[c.name] = tmpl.render(templateData(c));
  writeFileSync(join(outdir, basename(f, ".jinja") + ".json"), JSON.stringify(out, null, 2) + "\n");
}
