// The official openai and ollama clients against a running qwend, used as
// their users use them; each check asserts what the client library hands
// the user (its objects, its error classes and their messages):
//
//   node clients.mjs <daemon URL> <max body bytes> <context tokens>
//
// The daemon serves a synthetic model whose text is noise, so the checks
// are on shapes: text present, usage consistent, arguments and structured
// output valid against their schemas, vectors of unit length, errors of
// the right class whose message names the problem. Every step runs; each
// prints "ok - <step>" or "not ok - <step>: <why>", and the last line is
// "clients: N passed, M failed" (exit 1 when M > 0).

import OpenAI from 'openai';
import { Ollama } from 'ollama';
import Ajv from 'ajv';

const [base, maxBodyArg, ctxArg] = process.argv.slice(2);
if (!base || !maxBodyArg || !ctxArg) {
  console.error('usage: node clients.mjs <daemon URL> <max body bytes> <context tokens>');
  process.exit(2);
}
const maxBody = Number(maxBodyArg);
const ctxSize = Number(ctxArg);

const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
const ollama = new Ollama({ host: base });
const ajv = new Ajv({ allErrors: true, strict: true });

let passed = 0;
let failed = 0;
async function step(name, fn) {
  try {
    const detail = await fn();
    passed++;
    console.log(`ok - ${name}${detail ? ': ' + detail : ''}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${e?.stack || e}`);
  }
}
function check(cond, msg) {
  if (!cond) throw new Error(msg);
}
const show = (v) => JSON.stringify(v)?.slice(0, 600);

// validate checks value against the schema with ajv.
function validate(schema, value, what) {
  const v = ajv.compile(schema);
  check(v(value), `${what} ${show(value)} does not match the schema: ${ajv.errorsText(v.errors)}`);
}

// throws runs fn, which must throw, and returns what it threw.
async function throws(fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error('no error was thrown');
}

// readable checks an error's message is what a user can read: a string
// naming the problem (each of names), not an object printed as text.
function readable(e, ...names) {
  check(typeof e.message === 'string' && e.message.length > 0, `message ${show(e.message)} is not a string`);
  check(!e.message.includes('[object Object]'), `message ${show(e.message)}`);
  for (const n of names) check(e.message.includes(n), `message ${show(e.message)} does not name ${show(n)}`);
  return e.message;
}

// unitVectors checks vectors are n arrays of numbers of one length, each
// of length 1 (L2).
function unitVectors(vectors, n) {
  check(Array.isArray(vectors) && vectors.length === n, `${vectors?.length} vectors, want ${n}`);
  const dim = vectors[0].length;
  check(dim > 0, 'empty vector');
  vectors.forEach((v, i) => {
    check(v.length === dim, `vector ${i} has ${v.length} numbers, vector 0 ${dim}`);
    check(v.every((x) => typeof x === 'number' && Number.isFinite(x)), `vector ${i} has a value that is not a finite number`);
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    check(Math.abs(norm - 1) < 1e-3, `vector ${i} has norm ${norm}`);
  });
  return dim;
}

// Schemas bound their strings with a pattern: the synthetic model's bytes
// could otherwise be invalid UTF-8.
const weatherParams = {
  type: 'object',
  properties: {
    city: { type: 'string', pattern: '^[a-z]{1,10}$' },
    days: { type: 'integer', minimum: 1, maximum: 7 },
  },
  required: ['city', 'days'],
  additionalProperties: false,
};
const itemSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', pattern: '^[a-z]{1,8}$' },
    count: { type: 'integer', minimum: 0, maximum: 99 },
    ok: { type: 'boolean' },
    tags: { type: 'array', items: { enum: ['red', 'green', 'blue'] }, maxItems: 2 },
  },
  required: ['name', 'count', 'ok', 'tags'],
  additionalProperties: false,
};
const weatherTool = { name: 'get_weather', description: 'The weather forecast for a city.', parameters: weatherParams };
const question = [{ role: 'user', content: 'What is the weather in paris for the next three days?' }];

// ---- openai ----

let model;

await step('openai models.list', async () => {
  const ids = [];
  for await (const m of openai.models.list()) {
    check(m.object === 'model' && typeof m.id === 'string' && typeof m.owned_by === 'string' && Number.isInteger(m.created), `model ${show(m)}`);
    ids.push(m.id);
  }
  check(ids.length === 1, `models ${show(ids)}, want the one served`);
  model = ids[0];
  return model;
});
model ??= 'tiny';

await step('openai models.retrieve', async () => {
  const m = await openai.models.retrieve(model);
  check(m.id === model && m.object === 'model', `model ${show(m)}`);
  check(m.context_length === ctxSize, `context_length ${m.context_length}, want ${ctxSize}`);
});

await step('openai models.retrieve of an unknown model: NotFoundError', async () => {
  const e = await throws(() => openai.models.retrieve('no-such-model'));
  check(e instanceof OpenAI.NotFoundError && e.status === 404, `threw ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
  return readable(e, 'no-such-model');
});

await step('openai chat', async () => {
  const c = await openai.chat.completions.create({ model, messages: question, max_tokens: 16, temperature: 0 });
  check(c.object === 'chat.completion' && /^chatcmpl-/.test(c.id) && c.model === model, `completion ${show(c)}`);
  check(c.choices.length === 1, `${c.choices.length} choices`);
  const [ch] = c.choices;
  check(ch.message.role === 'assistant' && typeof ch.message.content === 'string' && ch.message.content.length > 0, `message ${show(ch.message)}`);
  check(ch.finish_reason === 'length' || ch.finish_reason === 'stop', `finish_reason ${ch.finish_reason}`);
  const u = c.usage;
  check(u.prompt_tokens > 0 && u.completion_tokens > 0 && u.completion_tokens <= 16 && u.total_tokens === u.prompt_tokens + u.completion_tokens, `usage ${show(u)}`);
  return `${show(ch.message.content)}, ${ch.finish_reason}`;
});

await step('openai chat streamed with include_usage', async () => {
  const stream = await openai.chat.completions.create({
    model, messages: question, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  check(chunks.length >= 3, `${chunks.length} chunks`);
  let text = '';
  const finishes = [];
  chunks.forEach((c, i) => {
    check(c.object === 'chat.completion.chunk' && c.id === chunks[0].id, `chunk ${i}: ${show(c)}`);
    for (const ch of c.choices) {
      text += ch.delta.content || '';
      if (ch.finish_reason) finishes.push(ch.finish_reason);
    }
  });
  check(text.length > 0, 'no text');
  check(finishes.length === 1 && ['length', 'stop'].includes(finishes[0]), `finish reasons ${show(finishes)}`);
  const last = chunks[chunks.length - 1];
  check(last.choices.length === 0 && last.usage, `last chunk ${show(last)}: want the usage and no choices`);
  const u = last.usage;
  check(u.completion_tokens > 0 && u.total_tokens === u.prompt_tokens + u.completion_tokens, `usage ${show(u)}`);
  check(chunks.slice(0, -1).every((c) => c.usage == null), 'usage on a chunk before the last');
  return `${chunks.length} chunks, ${u.completion_tokens} tokens`;
});

await step('openai tools: required, the tool result, then auto', async () => {
  const tools = [{ type: 'function', function: weatherTool }];
  const messages = [...question];
  const t1 = await openai.chat.completions.create({ model, messages, tools, tool_choice: 'required', parallel_tool_calls: false, temperature: 0, max_tokens: 400 });
  const m1 = t1.choices[0].message;
  check(t1.choices[0].finish_reason === 'tool_calls', `finish_reason ${t1.choices[0].finish_reason}: ${show(m1)}`);
  check(Array.isArray(m1.tool_calls) && m1.tool_calls.length >= 1, `no tool call: ${show(m1)}`);
  for (const call of m1.tool_calls) {
    check(/^call_/.test(call.id) && call.type === 'function' && call.function.name === 'get_weather', `call ${show(call)}`);
    check(typeof call.function.arguments === 'string', `arguments ${show(call.function.arguments)} are not a JSON string`);
    validate(weatherParams, JSON.parse(call.function.arguments), 'arguments');
  }

  // the tool results (tool_choice left to its default), then another
  // question with tool_choice auto: text or calls, as the model chooses
  messages.push(m1);
  for (const call of m1.tool_calls) {
    messages.push({ role: 'tool', tool_call_id: call.id, content: '{"forecast":"sunny","high_c":21}' });
  }
  const t2 = await openai.chat.completions.create({ model, messages, tools, max_tokens: 16, temperature: 0 });
  autoAnswer(t2, 'tool result turn');
  check(t2.usage.prompt_tokens > t1.usage.prompt_tokens, `prompt_tokens ${t2.usage.prompt_tokens} after the tool turn, ${t1.usage.prompt_tokens} before`);
  messages.push({ role: 'user', content: 'And in rome?' });
  const t3 = await openai.chat.completions.create({ model, messages, tools, tool_choice: 'auto', max_tokens: 16 });
  autoAnswer(t3, 'auto turn');
  check(t3.usage.prompt_tokens > t2.usage.prompt_tokens, `prompt_tokens ${t3.usage.prompt_tokens} after another question, ${t2.usage.prompt_tokens} before`);
  return `${m1.tool_calls.length} call(s) ${m1.tool_calls.map((c) => c.function.arguments).join(' ')}; then ${t2.choices[0].finish_reason}, ${t3.choices[0].finish_reason}`;
});

// autoAnswer checks a completion the model could answer with text or
// calls: calls of the tool with JSON arguments, or text.
function autoAnswer(c, what) {
  const [ch] = c.choices;
  check(ch.message.role === 'assistant', `${what}: message ${show(ch.message)}`);
  if (ch.finish_reason === 'tool_calls') {
    check(ch.message.tool_calls?.length >= 1 && ch.message.tool_calls.every((tc) => /^call_/.test(tc.id) && tc.function.name === 'get_weather' &&
      typeof tc.function.arguments === 'string'), `${what}: calls ${show(ch.message.tool_calls)}`);
  } else {
    check(['stop', 'length'].includes(ch.finish_reason) && !ch.message.tool_calls?.length && typeof ch.message.content === 'string', `${what}: answer ${show(ch)}`);
  }
}

await step('openai response_format json_schema (chat.completions.parse)', async () => {
  const c = await openai.chat.completions.parse({
    model, messages: [{ role: 'user', content: 'Describe one item.' }], max_tokens: 300, temperature: 0,
    response_format: { type: 'json_schema', json_schema: { name: 'item', strict: true, schema: itemSchema } },
  });
  const m = c.choices[0].message;
  check(c.choices[0].finish_reason === 'stop', `finish_reason ${c.choices[0].finish_reason}: ${show(m.content)}`);
  check(m.parsed && typeof m.parsed === 'object', `parsed ${show(m.parsed)} from ${show(m.content)}`);
  validate(itemSchema, m.parsed, 'output');
  validate(itemSchema, JSON.parse(m.content), 'content');
  return m.content;
});

await step('openai embeddings', async () => {
  const input = ['first text', 'a second, longer text to embed'];
  const e = await openai.embeddings.create({ model, input }); // the client asks for base64 and decodes it
  check(e.object === 'list' && e.model === model && e.data.length === 2, `embeddings ${show(e)}`);
  e.data.forEach((d, i) => check(d.object === 'embedding' && d.index === i, `data[${i}] ${show({ ...d, embedding: undefined })}`));
  const dim = unitVectors(e.data.map((d) => d.embedding), 2);
  check(e.usage.prompt_tokens > 0 && e.usage.total_tokens === e.usage.prompt_tokens, `usage ${show(e.usage)}`);
  const f = await openai.embeddings.create({ model, input, encoding_format: 'float' });
  f.data.forEach((d, i) => {
    const diff = Math.max(...d.embedding.map((x, j) => Math.abs(x - e.data[i].embedding[j])));
    check(diff < 1e-6, `input ${i}: float and base64 vectors differ by ${diff}`);
  });
  return `2 vectors of ${dim}`;
});

await step('openai abort mid-stream (AbortController)', async () => {
  // greedy on the synthetic model: it runs until the context is full
  const params = { model, messages: question, max_tokens: ctxSize, temperature: 0 };

  // the stream helper: its final completion rejects with the abort error
  const ac = new AbortController();
  const runner = openai.chat.completions.stream(params, { signal: ac.signal });
  let deltas = 0;
  runner.on('content', () => {
    deltas++;
    ac.abort();
  });
  const e = await throws(() => runner.finalChatCompletion());
  check(e instanceof OpenAI.APIUserAbortError, `finalChatCompletion threw ${e?.constructor?.name}: ${e?.message}`);
  check(deltas >= 1 && runner.aborted, `${deltas} deltas, aborted ${runner.aborted}`);
  readable(e, 'abort');

  // the plain stream: iterating it ends at the abort, without the last
  // chunk (the client ends an aborted stream without throwing)
  const ac2 = new AbortController();
  const stream = await openai.chat.completions.create({ ...params, stream: true }, { signal: ac2.signal });
  const seen = [];
  for await (const c of stream) {
    seen.push(c);
    if (c.choices[0]?.delta?.content) ac2.abort();
  }
  check(ac2.signal.aborted && seen.length >= 1, `${seen.length} chunks, aborted ${ac2.signal.aborted}`);
  check(seen.every((c) => !c.choices[0]?.finish_reason), `a finish_reason after the abort: ${show(seen[seen.length - 1])}`);

  // still serving
  const c = await openai.chat.completions.create({ model, messages: question, max_tokens: 4 });
  check(c.choices[0].message.role === 'assistant' && c.usage.completion_tokens > 0, `after the aborts: ${show(c)}`);
  return `${e.constructor.name} "${e.message}" after ${deltas} delta(s); the plain stream ended after ${seen.length} chunk(s); the next request answered`;
});

const chatOf = (extra) => ({ model, messages: question, max_tokens: 4, ...extra });

await step('openai 400: bad temperature is a BadRequestError naming it', async () => {
  const e = await throws(() => openai.chat.completions.create(chatOf({ temperature: 5 })));
  check(e instanceof OpenAI.BadRequestError && e.status === 400, `threw ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
  return readable(e, 'temperature');
});

await step('openai 404: unknown model in chat is a NotFoundError naming it', async () => {
  const e = await throws(() => openai.chat.completions.create(chatOf({ model: 'no-such-model' })));
  check(e instanceof OpenAI.NotFoundError && e.status === 404, `threw ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
  check(e.code === 'model_not_found', `code ${e.code}`);
  return readable(e, 'no-such-model');
});

await step('openai logprobs: the tokens spell the answer, each with its top_logprobs', async () => {
  const r = await openai.chat.completions.create(chatOf({ logprobs: true, top_logprobs: 2, temperature: 0, max_tokens: 8 }));
  const c = r.choices[0];
  const content = c.logprobs?.content;
  check(Array.isArray(content) && content.length > 0, `logprobs ${show(c.logprobs)}`);
  check(content.map((t) => t.token).join('') === c.message.content, `tokens ${show(content.map((t) => t.token))} do not spell ${show(c.message.content)}`);
  for (const t of content) {
    check(t.logprob <= 0 && Array.isArray(t.bytes) && t.top_logprobs.length === 2, `token ${show(t)}`);
  }
  return `${content.length} tokens`;
});

await step('openai top_logprobs without logprobs: a BadRequestError naming it', async () => {
  const e = await throws(() => openai.chat.completions.create(chatOf({ top_logprobs: 2 })));
  check(e instanceof OpenAI.BadRequestError && e.status === 400, `threw ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
  return readable(e, 'top_logprobs');
});

await step('openai 413: a body over --max-body-bytes', async () => {
  const content = 'x'.repeat(maxBody + 1024);
  const e = await throws(() => openai.chat.completions.create(chatOf({ messages: [{ role: 'user', content }] })));
  check(e instanceof OpenAI.APIError && e.status === 413, `threw ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
  return readable(e, String(maxBody));
});

await step('openai context_length_exceeded: a prompt over the context', async () => {
  const content = 'word '.repeat(ctxSize * 4);
  const e = await throws(() => openai.chat.completions.create(chatOf({ messages: [{ role: 'user', content }] })));
  check(e instanceof OpenAI.BadRequestError && e.status === 400, `threw ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
  check(e.code === 'context_length_exceeded', `code ${e.code}`);
  return readable(e, 'context', String(ctxSize));
});

// ---- ollama ----

let tag = model;

await step('ollama list', async () => {
  const { models } = await ollama.list();
  check(models.length === 1, `models ${show(models)}`);
  const [m] = models;
  check(typeof m.name === 'string' && m.name.startsWith(model), `name ${m.name}`);
  check(m.model === m.name, `model ${m.model}, name ${m.name}`);
  check(Number.isInteger(m.size) && m.size > 0, `size ${m.size}`);
  check(/^[0-9a-f]{64}$/.test(m.digest), `digest ${m.digest}`);
  check(typeof m.details?.family === 'string' && m.details.family.length > 0, `details ${show(m.details)}`);
  check(!Number.isNaN(Date.parse(m.modified_at)), `modified_at ${m.modified_at}`);
  tag = m.name;
  return `${m.name}, ${m.size} bytes, ${m.details.family}`;
});

await step('ollama show', async () => {
  const s = await ollama.show({ model: tag });
  check(typeof s.details?.family === 'string' && s.details.family.length > 0, `details ${show(s.details)}`);
  check(typeof s.template === 'string', `template ${show(s.template)}`);
  check(s.model_info && typeof s.model_info === 'object' && Object.keys(s.model_info).length > 0, `model_info ${show(s.model_info)}`);
  check(Array.isArray(s.capabilities) && s.capabilities.includes('completion'), `capabilities ${show(s.capabilities)}`);
  return `capabilities ${s.capabilities.join(', ')}`;
});

await step('ollama ps', async () => {
  const { models } = await ollama.ps();
  check(models.length === 1 && models[0].name === tag && models[0].size > 0, `models ${show(models)}`);
  check(!Number.isNaN(Date.parse(models[0].expires_at)), `expires_at ${models[0].expires_at}`);
});

const opts = { temperature: 0, num_predict: 16 };

// servedName says whether a response's model names the served model: the
// name list() gives or the same without ":latest".
const servedName = (name) => name === tag || name === model;

// final checks the last object of a generate or chat.
function final(r, step) {
  check(r.done === true && ['stop', 'length'].includes(r.done_reason), `${step}: done ${r.done}, done_reason ${r.done_reason}`);
  check(r.prompt_eval_count > 0 && r.eval_count > 0 && r.eval_count <= opts.num_predict, `${step}: counts ${r.prompt_eval_count}, ${r.eval_count}`);
  check(r.total_duration > 0 && Number.isInteger(r.total_duration), `${step}: total_duration ${r.total_duration}`);
}

await step('ollama generate', async () => {
  const r = await ollama.generate({ model: tag, prompt: 'Why is the sky blue?', options: opts });
  check(servedName(r.model) && typeof r.response === 'string' && r.response.length > 0, `response ${show(r)}`);
  final(r, 'generate');
  check(Array.isArray(r.context) && r.context.length >= r.prompt_eval_count && r.context.every(Number.isInteger), `context ${show(r.context)}`);
  return `${show(r.response)}, ${r.done_reason}`;
});

await step('ollama generate with logprobs: the tokens spell the answer', async () => {
  const r = await ollama.generate({ model: tag, prompt: 'Why is the sky blue?', options: { ...opts, temperature: 0 }, logprobs: true, top_logprobs: 2 });
  check(Array.isArray(r.logprobs) && r.logprobs.length > 0, `logprobs ${show(r.logprobs)}`);
  check(r.logprobs.map((t) => t.token).join('') === r.response, `tokens ${show(r.logprobs.map((t) => t.token))} do not spell ${show(r.response)}`);
  check(r.logprobs.every((t) => t.logprob <= 0 && t.top_logprobs?.length === 2), `entries ${show(r.logprobs)}`);
  return `${r.logprobs.length} tokens`;
});

await step('ollama generate streamed', async () => {
  const parts = [];
  for await (const p of await ollama.generate({ model: tag, prompt: 'Why is the sky blue?', options: opts, stream: true })) parts.push(p);
  check(parts.length >= 2, `${parts.length} parts`);
  check(parts.slice(0, -1).every((p) => p.done === false), 'done before the last part');
  const text = parts.map((p) => p.response).join('');
  check(text.length > 0, 'no text');
  final(parts[parts.length - 1], 'generate');
  return `${parts.length} parts`;
});

await step('ollama chat', async () => {
  const r = await ollama.chat({ model: tag, messages: question, options: opts });
  check(r.message.role === 'assistant' && typeof r.message.content === 'string' && r.message.content.length > 0, `message ${show(r.message)}`);
  final(r, 'chat');
  return show(r.message.content);
});

await step('ollama chat streamed with format (a JSON schema)', async () => {
  const parts = [];
  const stream = await ollama.chat({ model: tag, messages: [{ role: 'user', content: 'Describe one item.' }], format: itemSchema, stream: true, options: { num_predict: 300, temperature: 0 } });
  for await (const p of stream) parts.push(p);
  const last = parts[parts.length - 1];
  check(last.done === true && last.done_reason === 'stop', `done ${last.done}, done_reason ${last.done_reason}`);
  const text = parts.map((p) => p.message.content).join('');
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`content ${show(text)} is not JSON: ${e.message}`);
  }
  validate(itemSchema, value, 'content');
  return text;
});

await step('ollama tools with a tool message turn', async () => {
  const tools = [{ type: 'function', function: weatherTool }];
  const r1 = await ollama.chat({ model: tag, messages: question, tools, options: opts });
  const messages = [
    ...question,
    { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'paris', days: 3 } } }] },
    { role: 'tool', tool_name: 'get_weather', content: '{"forecast":"sunny","high_c":21}' },
  ];
  const r2 = await ollama.chat({ model: tag, messages, tools, options: opts });
  for (const r of [r1, r2]) {
    check(r.message.role === 'assistant' && typeof r.message.content === 'string', `message ${show(r.message)}`);
    for (const c of r.message.tool_calls || []) {
      check(c.function.name === 'get_weather' && c.function.arguments && typeof c.function.arguments === 'object', `call ${show(c)}`);
    }
    check(r.done === true, `done ${r.done}`);
  }
  check(r2.prompt_eval_count > r1.prompt_eval_count, `prompt_eval_count ${r2.prompt_eval_count} with the tool turn, ${r1.prompt_eval_count} without`);
  return `prompt_eval_count ${r1.prompt_eval_count}, then ${r2.prompt_eval_count}`;
});

await step('ollama embed', async () => {
  const r = await ollama.embed({ model: tag, input: ['first text', 'a second, longer text to embed'] });
  check(servedName(r.model) && r.prompt_eval_count > 0, `response ${show({ ...r, embeddings: undefined })}`);
  return `2 vectors of ${unitVectors(r.embeddings, 2)}`;
});

await step('ollama load (generate without a prompt)', async () => {
  const r = await ollama.generate({ model: tag });
  check(r.done === true && r.done_reason === 'load' && r.response === '', `response ${show(r)}`);
});

await step('ollama unknown model: ResponseError 404 naming it', async () => {
  for (const call of [
    () => ollama.generate({ model: 'no-such-model', prompt: 'hi' }),
    () => ollama.chat({ model: 'no-such-model', messages: question, stream: true }),
  ]) {
    const e = await throws(call);
    check(e.name === 'ResponseError' && e.status_code === 404, `threw ${e?.name} ${e?.status_code}: ${e?.message}`);
    readable(e, 'no-such-model');
  }
});

await step('ollama bad option: ResponseError naming options.top_p', async () => {
  const e = await throws(() => ollama.generate({ model: tag, prompt: 'hi', options: { top_p: 3 } }));
  check(e.name === 'ResponseError' && e.status_code === 400, `threw ${e?.name} ${e?.status_code}: ${e?.message}`);
  return readable(e, 'options.top_p');
});

await step('ollama abort() on a stream', async () => {
  const stream = await ollama.generate({ model: tag, prompt: 'Why is the sky blue?', stream: true, options: { temperature: 0, num_predict: ctxSize } });
  let parts = 0;
  const e = await throws(async () => {
    for await (const p of stream) {
      parts++;
      check(!p.done, 'the stream ended before the abort');
      if (p.response) ollama.abort();
    }
  });
  check(e.name === 'AbortError', `the stream ended with ${e?.name}: ${e?.message}`);
  check(parts >= 1, 'aborted before any part');
  const r = await ollama.generate({ model: tag, prompt: 'hi', options: { num_predict: 4 } });
  check(r.done === true && r.eval_count > 0, `after the abort: ${show(r)}`);
  return `${e.name} "${e.message}" after ${parts} part(s); the next request answered`;
});

console.log(`clients: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
