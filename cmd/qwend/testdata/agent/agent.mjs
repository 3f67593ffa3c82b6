// A scripted coding-agent loop with the official openai client against a
// running qwend, through chat completions and the Responses API:
//
//   node agent.mjs <base URL ending in /v1> <slots>
//
// Each API gets the same conversation: a long system prompt, a user turn in
// five text parts and ten tools; a first turn with tool_choice "required"
// that must come back as calls whose arguments match the tools' schemas;
// then the tool results, and a final answer. Every turn is streamed, and
// the headers of every stream must arrive before its first token. The
// first turn of each API is sent while <slots> other streams hold every
// slot: its headers must arrive while it waits in the queue, before those
// streams are cancelled and it can run. Prints one line per step and ends
// with "agent: N passed, M failed"; exits 1 on the first failure.

import OpenAI from 'openai';
import { accumulateResponse } from 'openai/lib/responses/ResponseAccumulator';
import Ajv from 'ajv';

const [baseURL, slotsArg] = process.argv.slice(2);
if (!baseURL || !slotsArg) {
  console.error('usage: node agent.mjs <base URL ending in /v1> <slots>');
  process.exit(2);
}
const slots = Number(slotsArg);
let servedModel;
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
const ajv = new Ajv({ allErrors: true, strict: true });

let passed = 0;
function ok(step, detail = '') {
  passed++;
  console.log(`ok - ${step}${detail ? ': ' + detail : ''}`);
}
function check(cond, step, msg) {
  if (!cond) throw new Error(`${step}: ${msg}`);
}

// ---- the conversation ----

const systemPrompt = (() => {
  const rules = [
    'Read a file before you edit it, and edit the smallest region that does the job.',
    'Run the tests that cover what you changed, and report their outcome in one line.',
    'Never invent a file path: list the directory or search for the name first.',
    'Prefer the project conventions over your own: formatting, naming, error handling.',
    'When a command fails, read its output and fix the cause before running it again.',
    'Keep answers short; show code only when the user asks for it or it is the answer.',
    'Do not commit, push or publish anything unless the user asks for it by name.',
    'Ask the user when a requirement is ambiguous instead of guessing at it.',
  ];
  const sections = ['Workflow', 'Editing', 'Testing', 'Communication'];
  let text = 'You are an autonomous coding agent working in the user\'s repository through the tools below.\n\n';
  sections.forEach((s, i) => {
    text += `# ${s}\n\n`;
    rules.forEach((r, j) => {
      text += `${i + 1}.${j + 1}. ${r} (${s.toLowerCase()} rule ${j + 1})\n`;
    });
    text += '\n';
  });
  return text;
})();
check(systemPrompt.length > 3072, 'setup', `system prompt of ${systemPrompt.length} characters, want several KB`);

const userParts = [
  '<environment>\nworking directory: /home/user/project\nplatform: linux\n</environment>',
  '<git-status>\n M src/server.go\n?? notes.txt\n</git-status>',
  '<reminder>\nThe todo list is empty.\n</reminder>',
  '<file path="notes.txt">\nthe handler ignores the timeout; see server.go\n</file>',
  'The HTTP handler in src/server.go ignores the request timeout. Find where the timeout is read and fix it, then run the tests.',
];

// Strings are bounded by a pattern: the synthetic model's random bytes
// could otherwise be invalid UTF-8, which the grammar counts as fewer
// characters than a JSON decoder reads (U+FFFD per byte), and llama.cpp's
// schema converter drops maxLength beside a pattern.
const str = (max) => ({ type: 'string', pattern: `^[a-z0-9 ./_-]{1,${max}}$` });
const int = (minimum, maximum) => ({ type: 'integer', minimum, maximum });
const bool = { type: 'boolean' };
const tools = [
  ['read_file', 'Read a file; returns numbered lines. Use offset and limit for long files.',
    { path: str(40), offset: int(0, 100000), limit: int(1, 2000) }, ['path']],
  ['write_file', 'Write a whole file, replacing it. Read it first when it exists.',
    { path: str(40), content: str(80) }, ['path', 'content']],
  ['edit_file', 'Replace an exact string in a file; it must occur once unless replace_all.',
    { path: str(40), old_string: str(40), new_string: str(40), replace_all: bool }, ['path', 'old_string', 'new_string']],
  ['list_directory', 'List a directory, optionally recursively.', { path: str(40), recursive: bool }, ['path']],
  ['search_files', 'Search file contents for a regular expression.', { pattern: str(40), glob: str(20) }, ['pattern']],
  ['run_command', 'Run a shell command; returns its exit status and output.', { command: str(60), timeout_ms: int(1, 600000) }, ['command']],
  ['git_diff', 'Show the uncommitted changes.', { staged: bool, paths: { type: 'array', items: str(40), maxItems: 3 } }, []],
  ['web_fetch', 'Fetch a web page and answer a question about it.',
    { url: { type: 'string', pattern: '^https?://[a-z0-9-]{1,20}[.][a-z]{2,3}/[a-z0-9/._-]{0,30}$' }, prompt: str(60) }, ['url', 'prompt']],
  ['todo_write', 'Replace the todo list.',
    { todos: { type: 'array', minItems: 1, maxItems: 3, items: { type: 'object', properties: { content: str(40), status: { enum: ['pending', 'in_progress', 'completed'] } }, required: ['content', 'status'], additionalProperties: false } } }, ['todos']],
  ['ask_user', 'Ask the user a question, with options when there are few.', { question: str(80), options: { type: 'array', items: str(30), maxItems: 3 } }, ['question']],
].map(([name, description, properties, required]) => ({
  name, description, parameters: { type: 'object', properties, required, additionalProperties: false },
}));
check(tools.length === 10, 'setup', 'want ten tools');
const validators = Object.fromEntries(tools.map((t) => [t.name, ajv.compile(t.parameters)]));
const chatTools = tools.map((t) => ({ type: 'function', function: t }));
const flatTools = tools.map((t) => ({ type: 'function', strict: true, ...t }));

// validCall checks a call names one of the tools and its arguments parse
// and match that tool's schema.
function validCall(step, name, args) {
  check(name in validators, step, `called ${JSON.stringify(name)}, not one of the tools`);
  let value;
  try {
    value = JSON.parse(args);
  } catch (e) {
    throw new Error(`${step}: ${name} arguments ${JSON.stringify(args)} are not JSON: ${e.message}`);
  }
  const v = validators[name];
  check(v(value), step, `${name} arguments ${args} do not match the schema: ${ajv.errorsText(v.errors)}`);
  return value;
}

// toolResult is what the agent's tool would have answered.
function toolResult(name, args) {
  return `${name} done: ${JSON.stringify(args).slice(0, 200)}\nexit status 0`;
}

// ---- streaming with timings ----

// streamed sends a streamed request (create is called with the request
// options) and reads it whole: the time its headers came, the time of
// each event, and the events.
async function streamed(step, create) {
  const start = performance.now();
  const { data: stream, response } = await create().withResponse();
  const headersAt = performance.now() - start;
  check(response.status === 200, step, `status ${response.status}`);
  check((response.headers.get('content-type') || '').startsWith('text/event-stream'), step, `content type ${response.headers.get('content-type')}`);
  const events = [];
  for await (const ev of stream) events.push({ at: performance.now() - start, ev });
  return { headersAt, events, response };
}

// hold starts `slots` streams that take every slot, and resolves once each
// is generating; release cancels them and says whether any had ended.
async function hold(step) {
  const holds = [];
  for (let i = 0; i < slots; i++) {
    // greedy on the synthetic model: it runs to max_tokens
    const stream = await client.completions.create({ model: servedModel, prompt: 'hold', max_tokens: 4000, temperature: 0, stream: true });
    const it = stream[Symbol.asyncIterator]();
    const first = await it.next();
    check(!first.done, step, `hold ${i} ended at once`);
    const h = { stream, ended: false };
    h.rest = (async () => {
      try {
        for (let r = await it.next(); !r.done; r = await it.next()) {
          if (r.value.choices?.[0]?.finish_reason) h.ended = r.value.choices[0].finish_reason;
        }
      } catch {
        // cancelled
      }
    })();
    holds.push(h);
  }
  return {
    ended: () => holds.find((h) => h.ended)?.ended,
    release: async () => {
      holds.forEach((h) => h.stream.controller.abort());
      await Promise.all(holds.map((h) => h.rest));
    },
  };
}

// queuedStream is streamed() for a request sent while every slot is held:
// its headers must come while the holds still generate, and its first
// token only after they are released.
async function queuedStream(step, create) {
  const held = await hold(step);
  const start = performance.now();
  const { data: stream, response } = await create().withResponse();
  const headersAt = performance.now() - start;
  const ended = held.ended();
  check(!ended, step, `a stream holding a slot ended (${ended}) before the headers came: they waited for a slot`);
  await held.release();
  const releasedAt = performance.now() - start;
  check(response.status === 200, step, `status ${response.status}`);
  const events = [];
  for await (const ev of stream) events.push({ at: performance.now() - start, ev });
  ok(`${step}: headers while queued`, `headers after ${headersAt.toFixed(0)} ms, slots released after ${releasedAt.toFixed(0)} ms`);
  return { headersAt, releasedAt, events, response };
}

// ---- chat completions ----

async function chatCompletions(model) {
  const api = 'chat completions';
  const messages = [
    { role: 'system', content: systemPrompt },
    { role: 'user', content: userParts.map((text) => ({ type: 'text', text })) },
  ];
  const request = (extra) => ({
    model, messages, tools: chatTools, max_tokens: 32000, stream: true, stream_options: { include_usage: true }, ...extra,
  });

  // turn 1: a forced call
  let step = `${api} turn 1 (tool_choice required)`;
  const t1 = await queuedStream(step, () => client.chat.completions.create(request({ tool_choice: 'required' })));
  const turn1 = readChat(step, t1);
  check(turn1.finish === 'tool_calls', step,
    `finish_reason ${turn1.finish} after ${turn1.usage.completion_tokens} tokens: calls ${JSON.stringify(turn1.calls).slice(0, 2000)}, content ${JSON.stringify(turn1.content).slice(0, 2000)}`);
  check(turn1.calls.length >= 1, step, 'no tool call');
  check(!turn1.content, step, `content ${JSON.stringify(turn1.content)} beside the calls`);
  const results = turn1.calls.map((c, i) => {
    check(/^call_/.test(c.id), step, `call ${i} id ${c.id}`);
    check(c.type === 'function', step, `call ${i} type ${c.type}`);
    return { call: c, args: validCall(step, c.function.name, c.function.arguments) };
  });
  check(turn1.usage.prompt_tokens > 1000, step, `prompt_tokens ${turn1.usage.prompt_tokens}: the long prompt is not all there`);
  ok(step, `${turn1.calls.length} schema-valid call(s): ${turn1.calls.map((c) => c.function.name).join(', ')}; ${turn1.usage.prompt_tokens} prompt tokens`);

  // turn 2: the tool results, and the final answer
  messages.push({ role: 'assistant', content: null, tool_calls: turn1.calls });
  for (const { call, args } of results) {
    messages.push({ role: 'tool', tool_call_id: call.id, content: toolResult(call.function.name, args) });
  }
  step = `${api} turn 2 (tool results, final answer)`;
  const t2 = await streamed(step, () => client.chat.completions.create(request({ max_tokens: 24 })));
  const turn2 = readChat(step, t2);
  check(turn2.calls.length === 0, step, `tool calls ${JSON.stringify(turn2.calls)} in the final answer`);
  check(turn2.finish === 'stop' || turn2.finish === 'length', step, `finish_reason ${turn2.finish}`);
  check(turn2.usage.prompt_tokens > turn1.usage.prompt_tokens, step, 'the tool results are not in the prompt');
  ok(step, `finish_reason ${turn2.finish}, ${turn2.usage.completion_tokens} tokens of text`);
}

// readChat checks a chat completions stream and gathers its answer: the
// headers before the first token, one role, tool calls by index (their
// parts joined), one finish_reason, then the usage chunk.
function readChat(step, { headersAt, events }) {
  check(events.length >= 2, step, `${events.length} chunks`);
  const first = events.find((e) => e.ev.choices?.length);
  check(first && headersAt < first.at, step, `headers after ${headersAt} ms, first token after ${first?.at} ms`);
  let content = '';
  let finish = null;
  let roles = 0;
  const calls = [];
  events.forEach(({ ev }, i) => {
    check(ev.object === 'chat.completion.chunk', step, `chunk ${i} object ${ev.object}`);
    for (const c of ev.choices) {
      if (c.delta.role) roles++;
      content += c.delta.content || '';
      for (const tc of c.delta.tool_calls || []) {
        const call = (calls[tc.index] ||= { id: '', type: '', function: { name: '', arguments: '' } });
        call.id += tc.id || '';
        call.type += tc.type || '';
        call.function.name += tc.function?.name || '';
        call.function.arguments += tc.function?.arguments || '';
      }
      if (c.finish_reason) {
        check(finish === null, step, 'two finish reasons');
        finish = c.finish_reason;
      }
    }
  });
  const last = events[events.length - 1].ev;
  check(roles === 1, step, `${roles} chunks with a role`);
  check(last.choices.length === 0 && last.usage, step, `last chunk ${JSON.stringify(last)}: want the usage`);
  const u = last.usage;
  check(u.total_tokens === u.prompt_tokens + u.completion_tokens && u.completion_tokens > 0, step, `usage ${JSON.stringify(u)}`);
  check(events.slice(0, -1).every(({ ev }) => ev.usage === null), step, 'usage not null on a chunk before the last');
  ok(`${step}: stream`, `headers after ${headersAt.toFixed(0)} ms, first token after ${first.at.toFixed(0)} ms, ${events.length} chunks`);
  return { content, finish, calls, usage: u };
}

// ---- Responses ----

async function responses(model) {
  const api = 'responses';
  const input = [{ type: 'message', role: 'user', content: userParts.map((text) => ({ type: 'input_text', text })) }];
  const request = (extra) => ({
    model, instructions: systemPrompt, input, tools: flatTools, max_output_tokens: 32000, stream: true, ...extra,
  });

  // turn 1: a forced call
  let step = `${api} turn 1 (tool_choice required)`;
  const t1 = await queuedStream(step, () => client.responses.create(request({ tool_choice: 'required' })));
  const turn1 = readResponse(step, t1);
  check(turn1.status === 'completed', step, `status ${turn1.status}`);
  const calls = turn1.output.filter((o) => o.type === 'function_call');
  check(calls.length >= 1, step, `no function_call in ${JSON.stringify(turn1.output)}`);
  check(turn1.output.every((o) => o.type === 'function_call'), step, `output beside the calls: ${JSON.stringify(turn1.output)}`);
  const results = calls.map((c, i) => {
    check(/^call_/.test(c.call_id) && /^fc_/.test(c.id) && c.status === 'completed', step, `call ${i}: ${JSON.stringify(c)}`);
    return { call: c, args: validCall(step, c.name, c.arguments) };
  });
  check(turn1.usage.input_tokens > 1000, step, `input_tokens ${turn1.usage.input_tokens}: the long prompt is not all there`);
  ok(step, `${calls.length} schema-valid call(s): ${calls.map((c) => c.name).join(', ')}; ${turn1.usage.input_tokens} input tokens`);

  // turn 2: the calls and their outputs appended, and the final answer
  input.push(...calls);
  for (const { call, args } of results) {
    input.push({ type: 'function_call_output', call_id: call.call_id, output: toolResult(call.name, args) });
  }
  step = `${api} turn 2 (tool results, final answer)`;
  const t2 = await streamed(step, () => client.responses.create(request({ max_output_tokens: 24 })));
  const turn2 = readResponse(step, t2);
  check(turn2.status === 'completed' || turn2.status === 'incomplete', step, `status ${turn2.status}`);
  check(turn2.output.length === 1 && turn2.output[0].type === 'message' && turn2.output[0].role === 'assistant', step,
    `output ${JSON.stringify(turn2.output)}: want one message`);
  check(turn2.usage.input_tokens > turn1.usage.input_tokens, step, 'the function outputs are not in the prompt');
  ok(step, `status ${turn2.status}, ${turn2.usage.output_tokens} tokens of text`);
}

// readResponse checks a Responses stream with the client's own
// accumulator (which throws on an event out of place) and returns the
// final response: response.created first and before any token, the
// headers before it, sequence numbers in order, the items added before
// their deltas and done after them, response.completed or
// response.incomplete last with the usage, and its output the same as
// the accumulated one.
function readResponse(step, { headersAt, events }) {
  check(events.length >= 3, step, `${events.length} events`);
  check(events[0].ev.type === 'response.created' && events[1].ev.type === 'response.in_progress', step,
    `first events ${events[0].ev.type}, ${events[1].ev.type}`);
  const firstToken = events.find((e) => /\.delta$/.test(e.ev.type));
  check(firstToken && headersAt <= events[0].at && events[0].at < firstToken.at, step,
    `headers after ${headersAt} ms, response.created after ${events[0].at} ms, first token after ${firstToken?.at} ms`);
  let snapshot;
  const open = new Set();
  const seen = new Set();
  events.forEach(({ ev }, i) => {
    check(ev.sequence_number === i, step, `event ${i} (${ev.type}) has sequence_number ${ev.sequence_number}`);
    seen.add(ev.type);
    snapshot = accumulateResponse(ev, snapshot);
    if (ev.type === 'response.output_item.added') open.add(ev.output_index);
    if (/\.delta$/.test(ev.type)) check(open.has(ev.output_index), step, `${ev.type} for item ${ev.output_index}, not open`);
    if (ev.type === 'response.output_item.done') {
      check(open.delete(ev.output_index), step, `item ${ev.output_index} done, not open`);
      check(ev.item.status !== 'in_progress', step, `item ${ev.output_index} done in progress`);
    }
  });
  check(open.size === 0, step, `items left open: ${[...open]}`);
  const last = events[events.length - 1].ev;
  check(last.type === 'response.completed' || last.type === 'response.incomplete', step, `last event ${last.type}`);
  const r = last.response;
  check(/^resp_/.test(r.id) && r.object === 'response' && r.status === last.type.slice('response.'.length), step, `response ${JSON.stringify(r).slice(0, 300)}`);
  const u = r.usage;
  check(u && u.total_tokens === u.input_tokens + u.output_tokens && u.output_tokens > 0 && u.input_tokens_details &&
    Number.isInteger(u.input_tokens_details.cached_tokens), step, `usage ${JSON.stringify(u)}`);
  check(JSON.stringify(r.output) === JSON.stringify(snapshot.output), step,
    `final output ${JSON.stringify(r.output)} is not the accumulated ${JSON.stringify(snapshot.output)}`);
  const want = r.output.some((o) => o.type === 'function_call')
    ? ['response.output_item.added', 'response.function_call_arguments.delta', 'response.function_call_arguments.done', 'response.output_item.done']
    : ['response.output_item.added', 'response.content_part.added', 'response.output_text.done', 'response.content_part.done', 'response.output_item.done'];
  for (const t of want) check(seen.has(t), step, `no ${t} event`);
  ok(`${step}: stream`, `headers after ${headersAt.toFixed(0)} ms, first token after ${firstToken.at.toFixed(0)} ms, ${events.length} events`);
  return r;
}

// ---- main ----

try {
  const models = await client.models.list();
  const model = models.data[0];
  check(model && model.context_length > 0, 'models', `models ${JSON.stringify(models.data)}`);
  servedModel = model.id;
  ok('models', `${model.id}, context_length ${model.context_length}`);
  await chatCompletions(model.id);
  await responses(model.id);
  console.log(`agent: ${passed} passed, 0 failed`);
} catch (e) {
  console.log(`not ok - ${e.message}`);
  console.log(`agent: ${passed} passed, 1 failed`);
  process.exit(1);
}
