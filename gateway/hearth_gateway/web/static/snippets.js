// The same chat request as curl, OpenAI SDK and Fireworks SDK code (pure functions).
// The key is never written into the code: it reads $HEARTH_API_KEY.

/** A JSON value as a Python literal. */
export function pyLiteral(value, indent = 0) {
  const pad = " ".repeat(indent + 4);
  const end = " ".repeat(indent);
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "None";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((v) => pad + pyLiteral(v, indent + 4)).join(",\n")},\n${end}]`;
  }
  const entries = Object.entries(value);
  if (!entries.length) return "{}";
  return `{\n${entries.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${pyLiteral(v, indent + 4)}`).join(",\n")},\n${end}}`;
}

function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

export function curl(origin, body) {
  return [
    `curl -N ${origin}/inference/v1/chat/completions \\`,
    '  -H "Authorization: Bearer $HEARTH_API_KEY" \\',
    '  -H "Content-Type: application/json" \\',
    `  -d ${shellQuote(JSON.stringify(body, null, 2))}`,
  ].join("\n");
}

function pythonCall(body) {
  const args = Object.entries(body).map(([name, value]) => `    ${name}=${pyLiteral(value, 4)},`);
  const lines = ["response = client.chat.completions.create(", ...args, ")"];
  if (body.stream) {
    lines.push(
      "for chunk in response:",
      "    if chunk.choices:",
      '        print(chunk.choices[0].delta.content or "", end="", flush=True)',
      "print()",
    );
  } else {
    lines.push("print(response.choices[0].message.content)");
  }
  return lines;
}

export function openaiSdk(origin, body) {
  return [
    "import os",
    "",
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url=${JSON.stringify(`${origin}/inference/v1`)}, api_key=os.environ["HEARTH_API_KEY"])`,
    ...pythonCall(body),
  ].join("\n");
}

export function fireworksSdk(origin, body) {
  return [
    "import os",
    "",
    "from fireworks import Fireworks",
    "",
    `client = Fireworks(base_url=${JSON.stringify(origin)}, api_key=os.environ["HEARTH_API_KEY"])`,
    ...pythonCall(body),
  ].join("\n");
}

export const SNIPPETS = [
  { id: "curl", title: "curl", make: curl },
  { id: "openai", title: "OpenAI SDK (Python)", make: openaiSdk },
  { id: "fireworks", title: "Fireworks SDK (Python)", make: fireworksSdk },
];
