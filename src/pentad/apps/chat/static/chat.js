// The /chat page: Pentad's own chat client, built on chat-sdk.js exactly like a product embedding the chat.
// It gets a `pcu_` user token for the signed-in account from /api/chat/session-token (cookie session + CSRF
// header). Only a message's server-sanitised `html` goes in with innerHTML; everything else is text.

import { ChatClient } from "./chat-sdk.js";

const PAGE_SIZE = 50;
const TYPING_SEND_EVERY_MS = 3_000;
const TYPING_IDLE_MS = 4_000;
const TYPING_SHOWN_MS = 6_000;
const REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "👀"];
const NEAR_BOTTOM_PX = 120;

const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

async function sessionToken() {
  const response = await fetch("/api/chat/session-token", {
    method: "POST",
    headers: { "X-CSRF-Token": csrf },
    credentials: "same-origin",
  });
  if (response.status === 401 || response.status === 403) return null; // Signed out: stop.
  if (!response.ok) throw new Error(`session token: HTTP ${response.status}`);
  return response.json();
}

const client = new ChatClient({ baseUrl: window.location.origin, getToken: sessionToken, persistQueue: true });

const state = {
  me: null,
  channels: new Map(), // id -> ChannelState, kept current by events
  unwatch: new Map(),
  users: new Map(), // id -> ChatUser: names and presence of the people seen
  view: null, // the open channel
  thread: null, // the open thread
  uploads: [],
  typingSentAt: 0,
  typingTimer: 0,
  typingChannel: null,
};

// ------------------------------------------------------------------ small helpers

function el(tag, { className, text, attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter(Boolean));
  return node;
}

function button(label, onClick, { className = "button button--small button--quiet", attrs } = {}) {
  const node = el("button", { className, text: label, attrs: { type: "button", ...attrs } });
  node.addEventListener("click", onClick);
  return node;
}

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

function listNames(names) {
  if (names.length <= 2) return names.join(" and ");
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]}`;
  return `${names[0]}, ${names[1]} and ${names.length - 2} others`;
}

function timeOf(iso) {
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  const options = sameDay ? { hour: "2-digit", minute: "2-digit" } : { dateStyle: "medium", timeStyle: "short" };
  return date.toLocaleString(undefined, options);
}

function sizeOf(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function remember(user) {
  if (user) state.users.set(user.id, { ...state.users.get(user.id), ...user });
}

function nameOf(userId) {
  if (userId === state.me?.id) return "You";
  return state.users.get(userId)?.name ?? "Someone";
}

function showError(id, error) {
  $(id).textContent = error ? (error.detail ?? error.message ?? String(error)) : "";
}

function notice(text) {
  $("composer-notice").textContent = text;
}

function isModerator(channel) {
  return ["owner", "moderator"].includes(channel?.role) || ["admin", "moderator"].includes(state.me?.role);
}

function channelLabel(channel) {
  if (channel.kind === "direct") {
    const other = channel.members.find((user) => user.id !== state.me.id);
    return other?.name ?? "Direct message";
  }
  if (channel.kind === "group" && !channel.name) {
    return channel.members.filter((user) => user.id !== state.me.id).map((user) => user.name).join(", ");
  }
  return channel.name;
}

function channelTitle(channel) {
  const label = channelLabel(channel);
  return channel.kind === "public" || channel.kind === "private" ? `# ${label}` : label;
}

function pageVisible() {
  return document.visibilityState === "visible";
}

// ------------------------------------------------------------------ channel list

function renderChannels() {
  const list = $("channel-list");
  const focused = document.activeElement?.closest?.("#channel-list [data-channel-id]")?.dataset.channelId;
  const channels = [...state.channels.values()].sort(
    (a, b) => (b.last_message_at ?? b.created_at).localeCompare(a.last_message_at ?? a.created_at),
  );
  list.replaceChildren(
    ...channels.map((channel) => {
      const link = el("a", {
        className: "chat-channel",
        attrs: {
          href: `/chat?channel=${channel.id}`,
          "data-channel-id": channel.id,
          "aria-current": state.view?.id === channel.id ? "page" : null,
        },
      });
      link.append(el("span", { className: "chat-channel__name", text: channelTitle(channel) }));
      if (channel.kind === "private") link.append(el("span", { className: "visually-hidden", text: " (private)" }));
      if (channel.unread_mentions > 0) {
        const label = plural(channel.unread_mentions, "unread mention", "unread mentions");
        link.append(el("span", { className: "chat-badge chat-badge--mention", text: `@${channel.unread_mentions}`, attrs: { title: label, "aria-label": label } }));
      }
      if (channel.unread_count > 0) {
        const label = plural(channel.unread_count, "unread message", "unread messages");
        link.append(el("span", { className: "chat-badge chat-badge--unread", text: String(channel.unread_count), attrs: { title: label, "aria-label": label } }));
      }
      link.addEventListener("click", (event) => {
        event.preventDefault();
        navigate(channel.id);
      });
      return el("li", {}, link);
    }),
  );
  if (!channels.length) list.append(el("li", { className: "muted", text: "No channels yet." }));
  // The list is rebuilt on every change: keep a keyboard user's place in it.
  if (focused) list.querySelector(`[data-channel-id="${CSS.escape(focused)}"]`)?.focus();
}

function addChannel(channel) {
  state.channels.set(channel.id, channel);
  for (const user of channel.members ?? []) remember(user);
  if (!state.unwatch.has(channel.id)) state.unwatch.set(channel.id, client.watch(channel.id, { since: channel.last_seq }));
  renderChannels();
}

function dropChannel(channelId) {
  state.unwatch.get(channelId)?.();
  state.unwatch.delete(channelId);
  state.channels.delete(channelId);
  if (state.view?.id === channelId) navigate(null);
  renderChannels();
}

async function refreshChannel(channelId) {
  try {
    const fresh = await client.channel(channelId);
    if (state.channels.has(channelId)) {
      state.channels.set(channelId, fresh);
      if (state.view?.id === channelId) {
        state.view.channel = fresh;
        renderHeader();
      }
      renderChannels();
    }
  } catch {
    // Gone or no longer visible: channel.removed follows.
  }
}

const refreshing = new Set();

// Many events may ask for the same channel's counts at once (a catch-up after a reconnection): one request.
function refreshSoon(channelId) {
  if (refreshing.has(channelId)) return;
  refreshing.add(channelId);
  setTimeout(() => {
    refreshing.delete(channelId);
    refreshChannel(channelId);
  }, 250);
}

async function loadInvites() {
  const invites = await client.invites();
  $("invites").hidden = invites.length === 0;
  $("invite-list").replaceChildren(
    ...invites.map((invite) =>
      el(
        "li",
        { className: "chat-list__item" },
        el("span", { text: `# ${invite.channel.name}` }),
        button("Accept", async () => {
          addChannel(await client.acceptInvite(invite.id));
          await loadInvites();
        }),
        button("Decline", async () => {
          await client.declineInvite(invite.id);
          await loadInvites();
        }),
      ),
    ),
  );
}

// ------------------------------------------------------------------ navigation

function navigate(channelId) {
  const url = channelId ? `/chat?channel=${encodeURIComponent(channelId)}` : "/chat";
  if (window.location.pathname + window.location.search !== url) window.history.pushState({}, "", url);
  openChannel(channelId);
}

function requestedChannel() {
  return new URLSearchParams(window.location.search).get("channel");
}

window.addEventListener("popstate", () => openChannel(requestedChannel()));

// ------------------------------------------------------------------ the open channel

async function openChannel(channelId) {
  closeThread();
  state.uploads = [];
  renderUploads();
  showError("composer-error", null);
  showError("page-error", null);
  notice("");
  stopTyping();
  if (!channelId) {
    state.view = null;
    $("channel-view").hidden = true;
    $("empty-view").hidden = false;
    delete $("chat").dataset.channel;
    renderChannels();
    return;
  }
  let channel = state.channels.get(channelId);
  if (!channel) {
    try {
      channel = await client.channel(channelId);
      if (channel.role === null && channel.kind === "public") channel = await client.joinChannel(channelId);
      addChannel(channel);
    } catch (error) {
      navigate(null);
      showError("page-error", error);
      return;
    }
  }
  const view = {
    id: channelId,
    channel,
    messages: new Map(),
    oldest: null,
    hasMore: false,
    loadingOlder: false,
    seq: channel.last_seq,
    members: new Map(),
    typing: new Map(),
  };
  state.view = view;
  $("empty-view").hidden = true;
  $("channel-view").hidden = false;
  $("chat").dataset.channel = channelId;
  $("messages").replaceChildren();
  $("receipts").textContent = "";
  $("typing").textContent = "";
  renderHeader();
  renderChannels();
  renderPending();
  const membersLoaded = loadMembers(view);
  let page;
  try {
    page = await client.messages(channelId, { limit: PAGE_SIZE });
  } catch (error) {
    showError("composer-error", error);
    return;
  }
  await membersLoaded;
  if (state.view !== view) return;
  view.seq = Math.max(view.seq, page.last_seq);
  view.hasMore = page.has_more;
  for (const message of page.messages) upsertMessage(message);
  $("load-older").hidden = !view.hasMore;
  scrollToBottom();
  renderReceipts();
  renderOnline();
  markRead();
  $("composer-text").focus();
}

async function loadMembers(view) {
  const members = await client.members(view.id, { limit: 500 }).catch(() => []);
  if (state.view !== view) return;
  for (const member of members) {
    remember(member.user);
    view.members.set(member.user.id, member);
  }
}

// After a reconnection: messages were synced by the SDK, but read pointers, members and unread counts
// have no sequence numbers to resume from, so they are fetched again.
async function refreshAll() {
  const channels = await client.channels().catch(() => null);
  if (!channels) return;
  const current = new Set(channels.map((channel) => channel.id));
  for (const id of [...state.channels.keys()]) if (!current.has(id)) dropChannel(id);
  for (const channel of channels) {
    if (state.channels.has(channel.id)) state.channels.set(channel.id, channel);
    else addChannel(channel);
  }
  if (state.view && state.channels.has(state.view.id)) {
    state.view.channel = state.channels.get(state.view.id);
    renderHeader();
    await loadMembers(state.view);
    renderReceipts();
    markRead();
  }
  renderChannels();
}

function renderHeader() {
  const view = state.view;
  if (!view) return;
  const channel = view.channel;
  $("channel-title").textContent = channelTitle(channel);
  $("channel-topic").textContent = channel.topic || "";
  $("channel-slow").hidden = !channel.slow_mode_seconds;
  $("channel-slow").textContent = channel.slow_mode_seconds ? `Slow mode: one message every ${channel.slow_mode_seconds} s` : "";
  $("open-moderation").hidden = !isModerator(channel) || channel.kind === "direct";
  const archived = Boolean(channel.archived_at);
  $("composer-text").disabled = archived;
  $("composer-text").placeholder = archived ? "This channel is archived." : "Write a message (Markdown, @mentions)";
}

function renderOnline() {
  const view = state.view;
  if (!view) return;
  const present = client.online(view.id);
  const names = [...present]
    .filter((id) => id !== state.me.id && view.members.has(id) && state.users.get(id)?.presence !== "offline")
    .map((id) => `${nameOf(id)}${state.users.get(id)?.presence === "away" ? " (away)" : ""}`);
  $("channel-online").textContent = names.length ? `Here now: ${listNames(names)}` : "";
}

function lastTopLevel() {
  const items = $("messages").querySelectorAll(":scope > li.msg");
  const last = items[items.length - 1];
  return last ? state.view.messages.get(last.dataset.id) : null;
}

function renderReceipts() {
  const view = state.view;
  if (!view) return;
  const latest = lastTopLevel();
  if (!latest) {
    $("receipts").textContent = "";
    return;
  }
  const seen = [...view.members.values()]
    .filter((m) => m.user.id !== state.me.id && m.user.id !== latest.user?.id && m.last_read_seq >= latest.seq)
    .map((m) => m.user.name);
  $("receipts").textContent = seen.length ? `Seen by ${listNames(seen)}` : "";
}

function markRead() {
  const view = state.view;
  if (!view || !pageVisible()) return;
  const channel = state.channels.get(view.id);
  const seq = Math.max(view.seq, client.lastSeq(view.id) ?? 0);
  if (!channel || channel.role === null || seq <= channel.last_read_seq) return;
  channel.last_read_seq = seq;
  channel.unread_count = 0;
  channel.unread_mentions = 0;
  renderChannels();
  client.markRead(view.id, seq).catch(() => {
    channel.last_read_seq = 0; // Try again on the next message or visit.
  });
}

function nearBottom() {
  const scroller = $("log-scroller");
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  const scroller = $("log-scroller");
  scroller.scrollTop = scroller.scrollHeight;
}

async function loadOlder() {
  const view = state.view;
  if (!view || !view.hasMore || view.loadingOlder) return;
  view.loadingOlder = true;
  try {
    const page = await client.messages(view.id, { before: view.oldest, limit: PAGE_SIZE });
    if (state.view !== view) return;
    const scroller = $("log-scroller");
    const before = scroller.scrollHeight;
    for (const message of page.messages) upsertMessage(message);
    scroller.scrollTop += scroller.scrollHeight - before; // Keep the reader's place.
    view.hasMore = page.has_more;
    $("load-older").hidden = !view.hasMore;
  } catch (error) {
    showError("composer-error", error);
  } finally {
    view.loadingOlder = false;
  }
}

// ------------------------------------------------------------------ messages

function renderBody(message) {
  const body = el("div", { className: "msg__body" });
  if (message.deleted_at) {
    body.classList.add("msg__body--deleted");
    body.textContent = "This message was deleted.";
  } else if (message.html) {
    body.innerHTML = message.html; // Rendered and sanitised by the server (apps/chat/markdown.py).
  } else if (message.type !== "text") {
    body.textContent = `(${message.type} message)`;
  }
  return body;
}

function renderAttachments(message) {
  if (!message.attachments.length || message.deleted_at) return null;
  return el(
    "ul",
    { className: "msg__files", attrs: { "aria-label": "Attachments" } },
    ...message.attachments.map((file) => {
      const link = el("a", { attrs: { href: file.url, target: "_blank", rel: "noopener" } });
      if (file.content_type.startsWith("image/") && (file.thumbnail_url || file.url)) {
        link.append(
          el("img", {
            className: "msg__image",
            attrs: { src: file.thumbnail_url || file.url, alt: file.filename, loading: "lazy", width: file.width, height: file.height },
          }),
        );
      } else {
        link.textContent = `${file.filename} (${sizeOf(file.size)})`;
      }
      return el("li", {}, link);
    }),
  );
}

function renderReactions(message) {
  const bar = el("div", { className: "msg__reactions" });
  if (message.deleted_at) return bar;
  for (const reaction of message.reactions) {
    const mine = reaction.user_ids.includes(state.me.id);
    const who = listNames(reaction.user_ids.map(nameOf));
    bar.append(
      button(
        `${reaction.emoji} ${reaction.count}`,
        () => toggleReaction(message, reaction.emoji, mine),
        {
          className: "reaction",
          attrs: {
            "aria-pressed": mine ? "true" : "false",
            title: who,
            "aria-label": `${reaction.emoji} ${reaction.count}: ${mine ? "remove your reaction" : "react too"}`,
          },
        },
      ),
    );
  }
  const picker = el("details", { className: "msg__picker" }, el("summary", { text: "Add reaction", className: "msg__action" }));
  const choices = el("div", { className: "msg__picker-choices" });
  for (const emoji of REACTIONS) {
    choices.append(
      button(emoji, () => {
        picker.open = false;
        toggleReaction(message, emoji, false);
      }, { className: "reaction reaction--choice", attrs: { "aria-label": `React with ${emoji}` } }),
    );
  }
  picker.append(choices);
  bar.append(picker);
  return bar;
}

async function toggleReaction(message, emoji, remove) {
  try {
    upsertMessage(remove ? await client.unreact(message.id, emoji) : await client.react(message.id, emoji));
  } catch (error) {
    showError("composer-error", error);
  }
}

function renderActions(message, { inThread }) {
  const channel = state.view?.channel;
  const own = message.user?.id === state.me.id;
  const moderator = isModerator(channel);
  const actions = el("div", { className: "msg__actions" });
  if (!inThread && !message.parent_id && !message.deleted_at) {
    const label = message.reply_count ? plural(message.reply_count, "reply", "replies") : "Reply in thread";
    actions.append(button(label, () => openThread(message), { className: "msg__action msg__thread" }));
  }
  if (message.deleted_at) return actions;
  const menu = el("div", { className: "msg__menu-items" });
  if (own && message.type === "text") menu.append(button("Edit", () => editMessage(message)));
  if (own || moderator) {
    menu.append(button("Delete", () => deleteMessage(message), { className: "button button--small button--quiet button--danger" }));
  }
  if (!own && message.user) menu.append(button("Report", () => reportMessage(message)));
  if (moderator && !own && message.user && channel?.kind !== "direct") {
    menu.append(button(`Mute ${message.user.name}`, () => restrictUser(message.user, "mute")));
    menu.append(button(`Ban ${message.user.name}`, () => restrictUser(message.user, "ban")));
  }
  if (menu.childElementCount) {
    const more = el("details", { className: "msg__more" }, el("summary", { className: "msg__action", text: "More", attrs: { "aria-label": "More actions" } }), menu);
    actions.append(more);
  }
  return actions;
}

function renderMessage(message, { inThread = false } = {}) {
  const item = el("li", {
    className: "msg",
    attrs: { id: `${inThread ? "reply" : "msg"}-${message.id}`, "data-id": message.id, "data-seq": message.seq },
  });
  if (message.user?.id === state.me.id) item.classList.add("msg--own");
  if (message.pinned_at) item.classList.add("msg--pinned");
  const meta = el(
    "div",
    { className: "msg__meta" },
    el("span", { className: "msg__author", text: message.user?.name ?? "System" }),
    el("time", { className: "msg__time", text: timeOf(message.created_at), attrs: { datetime: message.created_at } }),
  );
  if (message.edited_at && !message.deleted_at) meta.append(el("span", { className: "msg__edited", text: "(edited)" }));
  if (message.pinned_at) meta.append(el("span", { className: "msg__edited", text: "(pinned)" }));
  const footer = el("div", { className: "msg__footer" }, renderReactions(message), renderActions(message, { inThread }));
  item.append(...[meta, renderBody(message), renderAttachments(message), footer].filter(Boolean));
  return item;
}

// Insert or replace a message wherever it shows (main list, thread); newer revisions win.
function upsertMessage(message) {
  remember(message.user);
  const view = state.view;
  if (!view || view.id !== message.channel_id) return;
  if (message.parent_id) {
    upsertReply(message);
    return;
  }
  const known = view.messages.get(message.id);
  if (known && known.revision > message.revision) return;
  const list = $("messages");
  const existing = document.getElementById(`msg-${message.id}`);
  if (!known && view.hasMore && view.oldest !== null && message.seq < view.oldest) return; // Not loaded yet.
  view.messages.set(message.id, message);
  const item = renderMessage(message);
  if (existing) existing.replaceWith(item);
  else {
    const after = [...list.children].find((node) => Number(node.dataset.seq) > message.seq);
    list.insertBefore(item, after ?? null);
  }
  view.oldest = view.oldest === null ? message.seq : Math.min(view.oldest, message.seq);
  if (state.thread?.parent.id === message.id) {
    state.thread.parent = message;
    renderThreadParent();
  }
  removePending(message.client_id);
}

function upsertReply(message) {
  const thread = state.thread;
  if (!thread || thread.parent.id !== message.parent_id) return;
  const known = thread.replies.get(message.id);
  if (known && known.revision > message.revision) return;
  thread.replies.set(message.id, message);
  const item = renderMessage(message, { inThread: true });
  const existing = document.getElementById(`reply-${message.id}`);
  if (existing) existing.replaceWith(item);
  else {
    const list = $("thread-replies");
    const after = [...list.children].find((node) => Number(node.dataset.seq) > message.seq);
    list.insertBefore(item, after ?? null);
  }
  removePending(message.client_id);
}

async function editMessage(message) {
  const item = document.getElementById(`${message.parent_id ? "reply" : "msg"}-${message.id}`);
  const body = item?.querySelector(".msg__body");
  if (!body) return;
  const form = el("form", { className: "msg__edit" });
  const id = `edit-${message.id}`;
  const field = el("textarea", { attrs: { id, rows: 2 } });
  field.value = message.text;
  form.append(
    el("label", { text: "Edit message", attrs: { for: id } }),
    field,
    el("button", { className: "button button--small button--primary", text: "Save", attrs: { type: "submit" } }),
    button("Cancel", () => form.replaceWith(renderBody(message))),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      upsertMessage(await client.edit(message.id, { text: field.value }));
    } catch (error) {
      showError("composer-error", error);
    }
  });
  body.replaceWith(form);
  field.focus();
}

async function deleteMessage(message) {
  if (!window.confirm("Delete this message for everyone?")) return;
  try {
    upsertMessage(await client.deleteMessage(message.id));
  } catch (error) {
    showError("composer-error", error);
  }
}

async function reportMessage(message) {
  const reason = window.prompt("Why should the moderators look at this message?", "");
  if (reason === null) return;
  try {
    await client.report(message.id, reason.slice(0, 1000));
    notice("Thank you: the moderators will look at it.");
  } catch (error) {
    showError("composer-error", error);
  }
}

async function restrictUser(user, kind) {
  const verb = kind === "ban" ? "Ban" : "Mute";
  if (!window.confirm(`${verb} ${user.name} in this channel?`)) return;
  try {
    await client.restrict(state.view.id, { user_id: user.id, kind });
    notice(`${user.name} is ${kind === "ban" ? "banned" : "muted"} here.`);
  } catch (error) {
    showError("composer-error", error);
  }
}

// ------------------------------------------------------------------ sending, pending sends, uploads

function renderPending() {
  const view = state.view;
  const pending = view ? client.pending(view.id) : [];
  $("pending").replaceChildren(
    ...pending
      .filter((entry) => !entry.body.parent_id)
      .map((entry) => {
        const status = entry.state === "waiting" ? `Not sent yet, retrying (${entry.error})` : "Sending…";
        return el(
          "li",
          { className: "msg msg--pending msg--own", attrs: { "data-client-id": entry.client_id } },
          el("div", { className: "msg__meta" }, el("span", { className: "msg__author", text: "You" }), el("span", { className: "msg__time", text: status })),
          el("div", { className: "msg__body", text: entry.body.text }),
          entry.state === "waiting" ? button("Discard", () => client.discard(entry.client_id)) : null,
        );
      }),
  );
  const total = client.pending().length;
  $("queue-status").textContent = total ? `${plural(total, "message", "messages")} waiting to be sent` : "";
}

function removePending(clientId) {
  if (!clientId) return;
  document.querySelector(`#pending [data-client-id="${CSS.escape(clientId)}"]`)?.remove();
}

function renderUploads() {
  $("composer-uploads").replaceChildren(
    ...state.uploads.map((file) =>
      el(
        "li",
        { className: "chat-upload" },
        el("span", { text: `${file.filename} (${sizeOf(file.size)})` }),
        button(`Remove ${file.filename}`, async () => {
          state.uploads = state.uploads.filter((item) => item !== file);
          renderUploads();
          await client.deleteAttachment(file.id).catch(() => {});
        }),
      ),
    ),
  );
}

async function uploadFiles(files) {
  const view = state.view;
  if (!view) return;
  showError("composer-error", null);
  for (const file of files) {
    notice(`Uploading ${file.name}…`);
    try {
      state.uploads.push(await client.upload(view.id, file));
      notice("");
    } catch (error) {
      notice("");
      showError("composer-error", error);
    }
    renderUploads();
  }
}

async function sendFrom(field, errorId, extra) {
  const view = state.view;
  const text = field.value.trim();
  const attachments = extra.parent_id ? [] : state.uploads;
  if (!view || (!text && !attachments.length)) return;
  showError(errorId, null);
  field.value = "";
  stopTyping();
  const fields = { text, ...extra };
  if (attachments.length) {
    fields.attachment_ids = attachments.map((file) => file.id);
    state.uploads = [];
    renderUploads();
  }
  const channelId = view.id;
  const sent = client.send(channelId, fields);
  scrollToBottom();
  try {
    upsertMessage(await sent);
    if (state.view?.id === channelId && !extra.parent_id) scrollToBottom();
  } catch (error) {
    if (state.view?.id === channelId) {
      showError(errorId, error);
      if (!field.value) field.value = text; // Give the refused text back to fix it.
    }
  }
}

function noteTyping() {
  const view = state.view;
  if (!view) return;
  const now = Date.now();
  if (now - state.typingSentAt > TYPING_SEND_EVERY_MS || state.typingChannel !== view.id) {
    state.typingSentAt = now;
    state.typingChannel = view.id;
    client.typing(view.id, { active: true, parentId: state.thread?.typingHere ? state.thread.parent.id : null }).catch(() => {});
  }
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(state.typingTimer);
  if (!state.typingChannel) return;
  const channelId = state.typingChannel;
  state.typingChannel = null;
  state.typingSentAt = 0;
  client.typing(channelId, { active: false }).catch(() => {});
}

// ------------------------------------------------------------------ typing shown

function showTyping(event) {
  const view = state.view;
  if (!view || event.channel_id !== view.id || event.user.id === state.me.id) return;
  remember(event.user);
  const key = event.user.id;
  clearTimeout(view.typing.get(key)?.timer);
  if (event.type === "typing.stop") view.typing.delete(key);
  else {
    const timer = setTimeout(() => {
      view.typing.delete(key);
      renderTyping();
    }, TYPING_SHOWN_MS);
    view.typing.set(key, { name: event.user.name, parentId: event.parent_id, timer });
  }
  renderTyping();
}

function renderTyping() {
  const view = state.view;
  const typers = view ? [...view.typing.values()] : [];
  const line = (list) => {
    if (!list.length) return "";
    if (list.length > 3) return "Several people are typing…";
    return `${listNames(list.map((t) => t.name))} ${list.length === 1 ? "is" : "are"} typing…`;
  };
  $("typing").textContent = line(typers.filter((t) => !t.parentId));
  const parentId = state.thread?.parent.id;
  $("thread-typing").textContent = parentId ? line(typers.filter((t) => t.parentId === parentId)) : "";
}

// ------------------------------------------------------------------ threads

async function openThread(message) {
  closeSearch();
  state.thread = { parent: message, replies: new Map(), typingHere: false };
  const thread = state.thread;
  $("thread").hidden = false;
  $("chat").dataset.side = "thread";
  $("thread-replies").replaceChildren();
  showError("thread-error", null);
  renderThreadParent();
  renderTyping();
  $("thread-text").focus();
  try {
    const page = await client.replies(message.id, { limit: 200 });
    if (state.thread !== thread) return;
    for (const reply of page.messages) upsertReply(reply);
  } catch (error) {
    showError("thread-error", error);
  }
}

function renderThreadParent() {
  const parent = state.thread?.parent;
  if (!parent) return;
  $("thread-parent").replaceChildren(renderMessage(parent, { inThread: true }));
  $("thread-title").textContent = parent.reply_count
    ? `Thread: ${plural(parent.reply_count, "reply", "replies")}`
    : "Thread";
}

function closeSearch() {
  $("search-results").hidden = true;
  if ($("chat").dataset.side === "search") delete $("chat").dataset.side;
}

function closeThread() {
  state.thread = null;
  $("thread").hidden = true;
  if ($("chat").dataset.side === "thread") delete $("chat").dataset.side;
}

// ------------------------------------------------------------------ realtime events

function onMessageEvent(event) {
  const { message } = event;
  remember(message.user);
  const channel = state.channels.get(event.channel_id);
  if (event.parent) upsertMessage(event.parent);
  upsertMessage(message);
  const view = state.view;
  const mine = message.user?.id === state.me.id;
  if (event.type === "message.new" && channel) {
    if (!message.parent_id) channel.last_message_at = message.created_at;
    channel.last_seq = Math.max(channel.last_seq, event.seq);
    const reading = view?.id === event.channel_id && pageVisible();
    if (event.synced) refreshSoon(event.channel_id); // A catch-up: the server counts, not us.
    else if (!mine && !reading && !message.deleted_at && channel.role !== null && message.seq > channel.last_read_seq) {
      if (!message.parent_id) channel.unread_count += 1;
      if (message.mentions_channel || message.mentioned_user_ids.includes(state.me.id)) channel.unread_mentions += 1;
    }
    renderChannels();
  }
  if (event.type === "message.deleted" && channel?.unread_count) refreshSoon(event.channel_id);
  if (view?.id === event.channel_id) {
    view.seq = Math.max(view.seq, event.seq);
    if (event.type === "message.new" && !message.parent_id) {
      const typer = view.typing.get(message.user?.id);
      if (typer) {
        clearTimeout(typer.timer);
        view.typing.delete(message.user.id);
        renderTyping();
      }
      if (mine || nearBottom()) scrollToBottom();
    }
    renderReceipts();
    markRead();
  }
}

function onReadEvent(event) {
  if (event.user_id === state.me.id) {
    const channel = state.channels.get(event.channel_id);
    if (channel && event.last_read_seq >= channel.last_read_seq) {
      channel.last_read_seq = event.last_read_seq;
      if (event.last_read_seq >= channel.last_seq) {
        channel.unread_count = 0;
        channel.unread_mentions = 0;
        renderChannels();
      } else refreshChannel(event.channel_id);
    }
  }
  const view = state.view;
  if (view?.id !== event.channel_id) return;
  const member = view.members.get(event.user_id);
  if (member) {
    member.last_read_seq = event.last_read_seq;
    member.last_delivered_seq = event.last_delivered_seq;
  }
  renderReceipts();
}

async function onMemberEvent(event) {
  remember(event.user);
  if (event.user.id === state.me.id && event.type === "member.removed") return dropChannel(event.channel_id);
  refreshChannel(event.channel_id);
  const view = state.view;
  if (view?.id !== event.channel_id) return;
  if (event.type === "member.removed") view.members.delete(event.user.id);
  else await loadMembers(view);
  renderReceipts();
}

function onChannelEvent(event) {
  const known = state.channels.get(event.channel.id);
  if (!known) return;
  Object.assign(known, event.channel);
  if (state.view?.id === event.channel.id) {
    state.view.channel = known;
    renderHeader();
  }
  renderChannels();
}

function wireEvents() {
  for (const type of ["message.new", "message.updated", "message.deleted", "reaction.added", "reaction.removed"]) {
    client.on(type, onMessageEvent);
  }
  client.on("read.updated", onReadEvent);
  client.on("typing.start", showTyping);
  client.on("typing.stop", showTyping);
  for (const type of ["member.added", "member.removed", "member.updated"]) client.on(type, onMemberEvent);
  for (const type of ["channel.updated", "channel.archived", "channel.unarchived"]) client.on(type, onChannelEvent);
  client.on("presence.updated", ({ user }) => {
    remember(user);
    renderOnline();
  });
  client.on("online", ({ channel_id: channelId }) => {
    if (state.view?.id === channelId) renderOnline();
  });
  client.on("channel.added", async ({ channel }) => {
    if (!state.channels.has(channel.id)) addChannel(await client.channel(channel.id));
  });
  client.on("channel.removed", ({ channel }) => dropChannel(channel.id));
  client.on("invite.received", () => loadInvites());
  client.on("queue", renderPending);
  client.on("send.failed", ({ channel_id: channelId, error }) => {
    if (state.view?.id === channelId) showError("composer-error", error);
  });
  let wasConnected = false;
  client.on("connection.state", ({ state: connection }) => {
    if (connection === "connected" && wasConnected) refreshAll();
    if (connection === "connected") wasConnected = true;
    const text = {
      connecting: "Connecting…",
      connected: "Connected",
      disconnected: "Connection lost, reconnecting…",
      closed: "Disconnected. Reload the page to reconnect.",
    }[connection];
    $("connection").textContent = text ?? "";
    $("chat").dataset.connection = connection;
  });
}

// ------------------------------------------------------------------ dialogs: channels, people, moderation

function wireDialogs() {
  for (const closer of document.querySelectorAll("dialog [data-close]")) {
    closer.addEventListener("click", () => closer.closest("dialog").close());
  }
  $("new-channel").addEventListener("click", () => {
    $("channel-form").reset();
    showError("channel-error", null);
    $("channel-dialog").showModal();
  });
  $("channel-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    try {
      const channel = await client.createChannel({
        kind: data.get("kind"),
        name: String(data.get("name")).trim(),
        topic: String(data.get("topic") ?? ""),
      });
      addChannel(channel);
      $("channel-dialog").close();
      navigate(channel.id);
    } catch (error) {
      showError("channel-error", error);
    }
  });

  $("new-direct").addEventListener("click", () => {
    $("direct-form").reset();
    $("direct-results").replaceChildren();
    showError("direct-error", null);
    $("direct-dialog").showModal();
    findPeople("");
  });
  let searchTimer = 0;
  $("direct-q").addEventListener("input", (event) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => findPeople(event.target.value.trim()), 200);
  });
  $("direct-form").addEventListener("submit", (event) => event.preventDefault());

  $("open-moderation").addEventListener("click", openModeration);
  $("slow-mode-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const channel = await client.updateChannel(state.view.id, { slow_mode_seconds: Number($("slow-mode").value) });
      onChannelEvent({ channel });
      $("moderation-error").textContent = "Slow mode saved.";
    } catch (error) {
      showError("moderation-error", error);
    }
  });
}

async function findPeople(q) {
  try {
    const users = await client.users({ q: q || undefined, limit: 20 });
    $("direct-results").replaceChildren(
      ...users
        .filter((user) => user.id !== state.me.id)
        .map((user) =>
          el(
            "li",
            {},
            button(`${user.name} (@${user.handle})`, async () => {
              try {
                const channel = await client.openDirect(user.id);
                addChannel(channel);
                $("direct-dialog").close();
                navigate(channel.id);
              } catch (error) {
                showError("direct-error", error);
              }
            }, { className: "button button--small chat-person" }),
          ),
        ),
    );
    if (!$("direct-results").childElementCount) $("direct-results").append(el("li", { className: "muted", text: "Nobody found." }));
  } catch (error) {
    showError("direct-error", error);
  }
}

async function openModeration() {
  const view = state.view;
  if (!view) return;
  showError("moderation-error", null);
  $("slow-mode").value = String(view.channel.slow_mode_seconds);
  if (!$("slow-mode").value) $("slow-mode").value = "0";
  $("moderation-dialog").showModal();
  await Promise.all([renderRestrictions(view), renderReports()]);
}

async function renderRestrictions(view) {
  try {
    const restrictions = await client.restrictions(view.id);
    $("restriction-list").replaceChildren(
      ...restrictions.map((restriction) =>
        el(
          "li",
          { className: "chat-list__item" },
          el("span", {
            text: `${restriction.kind === "ban" ? "Banned" : "Muted"}: ${nameOf(restriction.user_id)}${restriction.expires_at ? ` until ${timeOf(restriction.expires_at)}` : ""}${restriction.reason ? ` (${restriction.reason})` : ""}`,
          }),
          button("Lift", async () => {
            await client.liftRestriction(view.id, restriction.id).catch((error) => showError("moderation-error", error));
            renderRestrictions(view);
          }),
        ),
      ),
    );
    if (!restrictions.length) $("restriction-list").append(el("li", { className: "muted", text: "Nobody is banned or muted here." }));
  } catch (error) {
    showError("moderation-error", error);
  }
}

async function renderReports() {
  try {
    const reports = await client.reports({ status: "open", limit: 50 });
    const items = await Promise.all(
      reports.map(async (report) => {
        const message = await client.message(report.message_id).catch(() => null);
        const channel = state.channels.get(report.channel_id);
        const resolve = (status, deleteMessage) => async () => {
          try {
            await client.resolveReport(report.id, { status, delete_message: deleteMessage });
          } catch (error) {
            showError("moderation-error", error);
          }
          renderReports();
        };
        return el(
          "li",
          { className: "chat-list__item chat-report" },
          el("p", { text: `${channel ? channelTitle(channel) : "A channel"}: ${message?.user?.name ?? "Someone"} wrote “${message?.text ?? "…"}”` }),
          report.reason ? el("p", { className: "muted", text: `Reason: ${report.reason}` }) : null,
          button("Delete the message", resolve("resolved", true), { className: "button button--small button--danger" }),
          button("Resolve", resolve("resolved", false), { className: "button button--small" }),
          button("Dismiss", resolve("dismissed", false), { className: "button button--small" }),
        );
      }),
    );
    $("report-list").replaceChildren(...items);
    if (!reports.length) $("report-list").append(el("li", { className: "muted", text: "No open reports." }));
  } catch (error) {
    showError("moderation-error", error);
  }
}

// ------------------------------------------------------------------ search

async function search(q) {
  closeThread();
  $("search-results").hidden = false;
  $("chat").dataset.side = "search";
  $("search-status").textContent = "Searching…";
  $("search-list").replaceChildren();
  try {
    const page = await client.search(q, { limit: 30 });
    $("search-status").textContent = page.results.length
      ? `${plural(page.results.length, "result", "results")}${page.has_more ? " (newest first; refine to see older ones)" : ""}`
      : "Nothing found.";
    $("search-list").replaceChildren(
      ...page.results.map(({ message, channel }) => {
        const where = channel.kind === "direct" ? "Direct message" : `# ${channel.name}`;
        const open = button(`${where}: ${message.user?.name ?? "System"}, ${timeOf(message.created_at)}`, () => {
          closeSearch();
          navigate(channel.id);
        }, { className: "chat-result__open" });
        return el("li", { className: "chat-result" }, open, el("p", { className: "chat-result__text", text: message.text }));
      }),
    );
  } catch (error) {
    $("search-status").textContent = error.detail ?? String(error);
  }
}

// ------------------------------------------------------------------ Web Push

async function wirePush() {
  const supported = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  if (!supported || Notification.permission === "denied") return;
  const registration = await navigator.serviceWorker.register("/static/chat/sw.js", { scope: "/static/chat/" });
  navigator.serviceWorker.addEventListener("message", (event) => {
    if (event.data?.type !== "chat.open") return;
    const target = new URL(event.data.url, window.location.origin);
    if (target.origin === window.location.origin && target.pathname === "/chat") {
      navigate(target.searchParams.get("channel"));
    }
  });
  if (Notification.permission === "granted") {
    await client.enablePush(registration).catch(() => {});
    return;
  }
  const enable = $("enable-push");
  enable.hidden = false;
  enable.addEventListener("click", async () => {
    if ((await Notification.requestPermission()) !== "granted") {
      enable.hidden = true;
      return;
    }
    try {
      await client.enablePush(registration);
      enable.hidden = true;
    } catch (error) {
      showError("composer-error", error);
    }
  });
}

// ------------------------------------------------------------------ the page

function wireComposer() {
  const composer = $("composer-text");
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    sendFrom(composer, "composer-error", {});
  });
  composer.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  composer.addEventListener("input", () => {
    if (state.thread) state.thread.typingHere = false;
    if (composer.value.trim()) noteTyping();
  });
  $("composer-file").addEventListener("change", async (event) => {
    await uploadFiles([...event.target.files]);
    event.target.value = "";
  });
  const reply = $("thread-text");
  $("thread-composer").addEventListener("submit", (event) => {
    event.preventDefault();
    if (state.thread) sendFrom(reply, "thread-error", { parent_id: state.thread.parent.id });
  });
  reply.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("thread-composer").requestSubmit();
    }
  });
  reply.addEventListener("input", () => {
    if (!state.thread) return;
    state.thread.typingHere = true;
    if (reply.value.trim()) noteTyping();
  });
  $("close-thread").addEventListener("click", closeThread);
  $("close-search").addEventListener("click", closeSearch);
  $("back-to-list").addEventListener("click", () => navigate(null));
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = $("search-q").value.trim();
    if (q) search(q);
  });
  $("load-older").addEventListener("click", loadOlder);
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadOlder();
  }, { root: $("log-scroller"), rootMargin: "200px 0px 0px 0px" }).observe($("load-older"));
}

function wirePresence() {
  const report = () => client.setPresence(pageVisible() ? "online" : "away").catch(() => {});
  document.addEventListener("visibilitychange", () => {
    report();
    if (pageVisible()) markRead();
  });
  window.addEventListener("pagehide", () => stopTyping());
  report();
}

async function start() {
  wireEvents();
  wireDialogs();
  wireComposer();
  try {
    state.me = await client.getMe();
    remember(state.me);
    const channels = await client.channels();
    for (const channel of channels) addChannel(channel);
    renderChannels();
    client.connect().catch((error) => {
      $("connection").textContent = `Could not connect: ${error.message}`;
    });
    wirePresence();
    loadInvites().catch(() => {});
    wirePush().catch(() => {});
    $("chat").dataset.state = "ready";
    await openChannel(requestedChannel());
  } catch (error) {
    $("chat").dataset.state = "failed";
    $("connection").textContent = `The chat could not start: ${error.detail ?? error.message}`;
  }
}

start();
