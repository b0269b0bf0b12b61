// The browser SDK of Pentad's chat: one ES module, no dependencies but Pentad's own realtime client (loaded
// relative to this file, so it works from whichever server serves it), no build step. Types: chat-sdk.d.ts;
// guide: docs/chat.md. ChatClient wraps the REST API (/api/chat), follows channels over /ws, fills every gap
// in a channel's event stream from /sync, and queues sends until the server has acknowledged them.

import { RealtimeClient } from "../js/realtime.js";

const RETRYABLE_STATUS = new Set([0, 408, 425, 429, 500, 502, 503, 504]);
// Realtime close codes after which the current token is useless: ask for another one.
const TOKEN_REJECTED = new Set([4001, 4003]);
const TOKEN_MARGIN_MS = 60_000;
const SYNC_PAGE = 200;

/** A refused or failed request: HTTP `status` (0: no answer), problem+json `code` and `detail`. */
export class ChatError extends Error {
  constructor(status, problem = {}, retryAfter = null) {
    super(problem.detail || `HTTP ${status}`);
    this.name = "ChatError";
    this.status = status;
    this.code = problem.code ?? null;
    this.detail = problem.detail ?? this.message;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }

  /** The network failed, the server was busy or rate-limited: the same request may succeed later. */
  get retryable() {
    return RETRYABLE_STATUS.has(this.status);
  }
}

/** A fresh client_id: a send retried with it is stored once. */
export function newClientId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// An application callback that throws must not break the client: report it as an uncaught error.
function safely(callback, ...args) {
  try {
    callback(...args);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}

// Milliseconds since the epoch at which a `pcu_<JWT>` expires, or Infinity when it cannot be read.
function jwtExpiry(token) {
  try {
    const payload = token.slice(token.indexOf("_") + 1).split(".")[1];
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const exp = JSON.parse(json).exp;
    return typeof exp === "number" ? exp * 1000 : Infinity;
  } catch {
    return Infinity;
  }
}

function retryAfterMs(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

// The event a sync result stands for: new to the client, deleted, or otherwise changed.
function syncedEvent(message, since) {
  let type = "message.updated";
  if (message.seq > since) type = "message.new";
  else if (message.deleted_at) type = "message.deleted";
  const event = { type, channel_id: message.channel_id, seq: message.revision, message, parent: null };
  return Object.assign(event, { synced: true });
}

class Emitter {
  #handlers = new Map();

  on(type, handler) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    this.#handlers.get(type).add(handler);
    return () => this.off(type, handler);
  }

  off(type, handler) {
    this.#handlers.get(type)?.delete(handler);
  }

  emit(type, payload) {
    for (const handler of [...(this.#handlers.get(type) ?? [])]) safely(handler, payload);
  }
}

export class ChatClient {
  #emitter = new Emitter();
  #base;
  #fetch;
  #fixedToken;
  #getToken;
  #token = null;
  #tokenExpiry = 0;
  #tokenRequest = null;
  #realtime = null;
  #realtimeOptions;
  #connecting = null;
  #channels = new Map();
  #queue = [];
  #waiters = new Map();
  #pumping = false;
  #wakeQueue = null;
  #storage;
  #storageKey;
  #retryInitial;
  #retryMax;
  #closed = false;
  #onOnline = () => this.retryNow();

  /**
   * Options: baseUrl (the Pentad server; default: the one this file was loaded from), token (a fixed
   * `pcu_` user token) or getToken (async () => token string, or {token, expires_at}, or null when signed
   * out), fetch, persistQueue (true: localStorage, or a Storage-like object), realtime (extra
   * RealtimeClient options: ackTimeout, backoffInitial, backoffMax), retryInitial/retryMax (send retry
   * delays, ms).
   */
  constructor({
    baseUrl,
    token,
    getToken,
    fetch,
    persistQueue = false,
    realtime = {},
    retryInitial = 500,
    retryMax = 30_000,
  } = {}) {
    if (!token === !getToken) throw new TypeError("ChatClient needs either token or getToken");
    const base = new URL(baseUrl ?? new URL("../..", import.meta.url).href);
    this.#base = base.href.replace(/\/+$/, "");
    this.#fetch = fetch ?? globalThis.fetch.bind(globalThis);
    this.#fixedToken = token ?? null;
    this.#getToken = getToken ?? null;
    this.#realtimeOptions = realtime;
    this.#retryInitial = retryInitial;
    this.#retryMax = retryMax;
    this.#storage = persistQueue === true ? globalThis.localStorage : persistQueue || null;
    this.me = null;
    globalThis.addEventListener?.("online", this.#onOnline);
  }

  // ------------------------------------------------------------------ events

  /** Listen to an event (see docs/chat.md); returns the function that stops listening. */
  on(type, handler) {
    return this.#emitter.on(type, handler);
  }

  off(type, handler) {
    this.#emitter.off(type, handler);
  }

  #emit(type, payload) {
    this.#emitter.emit(type, payload);
  }

  // ------------------------------------------------------------------ tokens and requests

  async #authToken({ force = false } = {}) {
    if (this.#fixedToken) return this.#fixedToken;
    if (!force && this.#token && Date.now() < this.#tokenExpiry - TOKEN_MARGIN_MS) return this.#token;
    this.#tokenRequest ??= (async () => {
      try {
        const given = await this.#getToken();
        const token = typeof given === "string" ? given : (given?.token ?? null);
        if (given && typeof given === "object" && given.user) this.me ??= given.user;
        this.#token = token;
        this.#tokenExpiry = given?.expires_at ? Date.parse(given.expires_at) : token ? jwtExpiry(token) : 0;
        return token;
      } finally {
        this.#tokenRequest = null;
      }
    })();
    return this.#tokenRequest;
  }

  /** Any client API call: `path` below /api/chat; query values that are null or undefined are left out. */
  async request(method, path, { query, body, form, signal } = {}) {
    const url = new URL(`${this.#base}/api/chat${path}`);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
    }
    for (let attempt = 0; ; attempt++) {
      let token;
      try {
        token = await this.#authToken({ force: attempt > 0 });
      } catch (error) {
        throw new ChatError(0, { code: "token_unavailable", detail: `getToken failed: ${error}` });
      }
      if (!token) throw new ChatError(401, { code: "signed_out", detail: "There is no token: signed out." });
      const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      let response;
      try {
        response = await this.#fetch(url, {
          method,
          headers,
          body: form ?? (body !== undefined ? JSON.stringify(body) : undefined),
          credentials: "omit",
          signal,
        });
      } catch (error) {
        if (error?.name === "AbortError") throw error;
        throw new ChatError(0, { code: "network", detail: String(error) });
      }
      // One retry with a fresh token: the cached one may have been revoked or expired early.
      if (response.status === 401 && attempt === 0 && this.#getToken) continue;
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        throw new ChatError(response.status, problem, retryAfterMs(response));
      }
      return response.status === 204 ? null : response.json();
    }
  }

  #id(value) {
    return encodeURIComponent(String(value));
  }

  // ------------------------------------------------------------------ users and presence

  /** Your chat user; also sets `client.me`. */
  async getMe() {
    this.me = await this.request("GET", "/me");
    return this.me;
  }

  setPresence(status) {
    return this.request("PUT", "/me/presence", { body: { status } });
  }

  /** Users of your tenant whose name or handle contains `q`. */
  users({ q, limit, offset } = {}) {
    return this.request("GET", "/users", { query: { q, limit, offset } });
  }

  // ------------------------------------------------------------------ channels and members

  channels({ includeArchived = false } = {}) {
    return this.request("GET", "/channels", { query: { include_archived: includeArchived || undefined } });
  }

  publicChannels({ limit, offset } = {}) {
    return this.request("GET", "/channels/public", { query: { limit, offset } });
  }

  channel(channelId) {
    return this.request("GET", `/channels/${this.#id(channelId)}`);
  }

  /** body: {kind, name, topic, members, data} as in POST /api/chat/channels. */
  createChannel(body) {
    return this.request("POST", "/channels", { body });
  }

  /** The direct conversation with one user, created on first use. */
  openDirect(userId) {
    return this.createChannel({ kind: "direct", members: [userId] });
  }

  /** patch: {name, topic, data, slow_mode_seconds}. */
  updateChannel(channelId, patch) {
    return this.request("PATCH", `/channels/${this.#id(channelId)}`, { body: patch });
  }

  archiveChannel(channelId) {
    return this.request("PUT", `/channels/${this.#id(channelId)}/archive`);
  }

  unarchiveChannel(channelId) {
    return this.request("DELETE", `/channels/${this.#id(channelId)}/archive`);
  }

  joinChannel(channelId) {
    return this.request("POST", `/channels/${this.#id(channelId)}/join`);
  }

  leaveChannel(channelId) {
    return this.request("POST", `/channels/${this.#id(channelId)}/leave`);
  }

  /** Members with their read receipts (`last_read_seq`, `last_delivered_seq`). */
  members(channelId, { limit, offset } = {}) {
    return this.request("GET", `/channels/${this.#id(channelId)}/members`, { query: { limit, offset } });
  }

  addMembers(channelId, userIds, role = "member") {
    return this.request("POST", `/channels/${this.#id(channelId)}/members`, {
      body: { user_ids: userIds, role },
    });
  }

  setMemberRole(channelId, userId, role) {
    return this.request("PATCH", `/channels/${this.#id(channelId)}/members/${this.#id(userId)}`, {
      body: { role },
    });
  }

  removeMember(channelId, userId) {
    return this.request("DELETE", `/channels/${this.#id(channelId)}/members/${this.#id(userId)}`);
  }

  invite(channelId, userIds) {
    return this.request("POST", `/channels/${this.#id(channelId)}/invites`, { body: { user_ids: userIds } });
  }

  invites() {
    return this.request("GET", "/invites");
  }

  acceptInvite(inviteId) {
    return this.request("POST", `/invites/${this.#id(inviteId)}/accept`);
  }

  declineInvite(inviteId) {
    return this.request("POST", `/invites/${this.#id(inviteId)}/decline`);
  }

  // ------------------------------------------------------------------ messages

  /** A page of history, oldest first: the newest by default, `before`/`after` a seq to page. */
  messages(channelId, { before, after, limit } = {}) {
    return this.request("GET", `/channels/${this.#id(channelId)}/messages`, {
      query: { before, after, limit },
    });
  }

  /** A thread's replies, paged like messages(). */
  replies(messageId, { before, after, limit } = {}) {
    return this.request("GET", `/messages/${this.#id(messageId)}/replies`, { query: { before, after, limit } });
  }

  message(messageId) {
    return this.request("GET", `/messages/${this.#id(messageId)}`);
  }

  messageHistory(messageId) {
    return this.request("GET", `/messages/${this.#id(messageId)}/history`);
  }

  /**
   * One page of the messages changed since a seq, ordered by revision; while `has_more`, the next page is
   * `sync(channelId, page.next_since)` (what the client does itself after a gap).
   */
  sync(channelId, since, { limit } = {}) {
    return this.request("GET", `/channels/${this.#id(channelId)}/sync`, { query: { since, limit } });
  }

  pins(channelId) {
    return this.request("GET", `/channels/${this.#id(channelId)}/pins`);
  }

  /**
   * Send a message: fields as in POST /channels/{id}/messages (text, type, payload, parent_id,
   * attachment_ids, mentioned_user_ids), plus client_id (default: a new one). The send joins the queue at
   * once and is retried with the same client_id while the network or the server fails, so it is stored
   * exactly once; resolves to the stored message, rejects with ChatError when the server refuses it.
   */
  send(channelId, fields) {
    if (this.#closed) return Promise.reject(new ChatError(0, { code: "closed", detail: "The client is closed." }));
    const body = { ...fields, client_id: fields.client_id ?? newClientId() };
    const entry = { client_id: body.client_id, channel_id: String(channelId), body, attempts: 0 };
    Object.assign(entry, { state: "queued", error: null, queued_at: new Date().toISOString() });
    const acknowledged = new Promise((resolve, reject) => this.#waiters.set(entry.client_id, { resolve, reject }));
    this.#queue.push(entry);
    this.#queueChanged();
    this.#pump();
    return acknowledged;
  }

  /** patch: {text, payload}. Only the author edits. */
  edit(messageId, patch) {
    return this.request("PATCH", `/messages/${this.#id(messageId)}`, { body: patch });
  }

  /** Leaves a tombstone; the author or a moderator. */
  deleteMessage(messageId) {
    return this.request("DELETE", `/messages/${this.#id(messageId)}`);
  }

  react(messageId, emoji) {
    return this.request("PUT", `/messages/${this.#id(messageId)}/reactions/${this.#id(emoji)}`);
  }

  unreact(messageId, emoji) {
    return this.request("DELETE", `/messages/${this.#id(messageId)}/reactions/${this.#id(emoji)}`);
  }

  pin(messageId) {
    return this.request("PUT", `/messages/${this.#id(messageId)}/pin`);
  }

  unpin(messageId) {
    return this.request("DELETE", `/messages/${this.#id(messageId)}/pin`);
  }

  /** Everything up to and including `seq` is read; the members see it as read.updated. */
  markRead(channelId, seq) {
    return this.request("POST", `/channels/${this.#id(channelId)}/read`, { body: { seq } });
  }

  markDelivered(channelId, seq) {
    return this.request("POST", `/channels/${this.#id(channelId)}/delivered`, { body: { seq } });
  }

  /** Tell the channel you are typing (active) or stopped; parentId: typing in that thread. */
  typing(channelId, { active = true, parentId = null } = {}) {
    return this.request("POST", `/channels/${this.#id(channelId)}/typing`, {
      body: { active, parent_id: parentId },
    });
  }

  /** Upload a file (a File or Blob) to attach to your next message: resolves to an AttachmentRef. */
  upload(channelId, file, { filename, signal } = {}) {
    const form = new FormData();
    if (filename === undefined) form.append("file", file);
    else form.append("file", file, filename);
    return this.request("POST", `/channels/${this.#id(channelId)}/attachments`, { form, signal });
  }

  /** Delete an attachment you uploaded and have not sent. */
  deleteAttachment(attachmentId) {
    return this.request("DELETE", `/attachments/${this.#id(attachmentId)}`);
  }

  /**
   * Search the messages you may read, newest first: {results: [{message, channel}], has_more,
   * next_before}. Options: channel_id, author_id, since, until, has_attachment, limit, before (the
   * previous page's next_before).
   */
  search(q, options = {}) {
    return this.request("GET", "/search", { query: { ...options, q } });
  }

  // ------------------------------------------------------------------ Web Push

  /**
   * Receive Web Push notifications of this user on this browser: subscribes `registration` (a service
   * worker registration, e.g. of /static/chat/sw.js) with the server's VAPID key and registers it.
   * Ask Notification.requestPermission() first.
   */
  async enablePush(registration) {
    let subscription = await registration.pushManager.getSubscription();
    if (!subscription) {
      const { public_key: key } = await this.request("GET", "/push/vapid-public-key");
      const raw = atob(key.replace(/-/g, "+").replace(/_/g, "/"));
      const applicationServerKey = Uint8Array.from(raw, (ch) => ch.charCodeAt(0));
      subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
    }
    await this.request("POST", "/push/subscriptions", { body: subscription.toJSON() });
    return subscription;
  }

  /** Stop Web Push to this browser. */
  async disablePush(registration) {
    const subscription = await registration.pushManager.getSubscription();
    if (!subscription) return;
    await this.request("DELETE", "/push/subscriptions", { body: { endpoint: subscription.endpoint } });
    await subscription.unsubscribe();
  }

  // ------------------------------------------------------------------ moderation

  report(messageId, reason = "") {
    return this.request("POST", `/messages/${this.#id(messageId)}/reports`, { body: { reason } });
  }

  reports({ status = "open", limit } = {}) {
    return this.request("GET", "/reports", { query: { status, limit } });
  }

  /** body: {status: "resolved" | "dismissed", resolution, delete_message}. */
  resolveReport(reportId, body) {
    return this.request("POST", `/reports/${this.#id(reportId)}/resolve`, { body });
  }

  restrictions(channelId) {
    return this.request("GET", `/channels/${this.#id(channelId)}/restrictions`);
  }

  /** body: {user_id, kind: "ban" | "mute", reason, duration (seconds; unset: until lifted)}. */
  restrict(channelId, body) {
    return this.request("POST", `/channels/${this.#id(channelId)}/restrictions`, { body });
  }

  liftRestriction(channelId, restrictionId) {
    return this.request("DELETE", `/channels/${this.#id(channelId)}/restrictions/${this.#id(restrictionId)}`);
  }

  // ------------------------------------------------------------------ realtime

  /** "idle" before connect(), then the realtime client's: connecting, connected, disconnected, closed. */
  get connectionState() {
    return this.#realtime?.state ?? "idle";
  }

  /**
   * Open the realtime connection (your user's topic and every watched channel) and start sending the
   * queue restored from storage. Resolves once connected; it keeps reconnecting with backoff after that.
   */
  connect() {
    this.#connecting ??= this.#start().catch((error) => {
      this.#connecting = null;
      throw error;
    });
    return this.#connecting;
  }

  async #start() {
    if (!this.#realtime) {
      if (!this.me) await this.#authToken();
      if (!this.me) await this.getMe();
      this.#storageKey = `pentad-chat:queue:${this.#base}:${this.me.id}`;
      this.#restoreQueue();
      const wsUrl = new URL(`${this.#base}/ws`);
      wsUrl.protocol = wsUrl.protocol.replace(/^http/, "ws");
      this.#realtime = new RealtimeClient({
        ...this.#realtimeOptions,
        url: wsUrl.href,
        getToken: () => this.#authToken(),
        onStateChange: (state, detail) => this.#onConnection(state, detail),
      });
      this.#realtime.subscribe(`chat.user.${this.me.id}`, ({ data }) => this.#emitEvent(data));
      for (const channel of this.#channels.values()) this.#follow(channel);
      this.#pump();
    }
    await this.#realtime.connect();
  }

  #onConnection(state, detail) {
    if (state === "disconnected" && TOKEN_REJECTED.has(detail.code)) this.#token = null;
    if (state === "connected") {
      for (const channel of this.#channels.values()) {
        if (channel.stop) this.#barrier(channel);
        else this.#follow(channel);
      }
      this.retryNow();
    }
    this.#emit("connection.state", { state, ...detail });
  }

  /** Stop: close the socket, stop retrying sends (queued ones stay in storage when persisted). */
  close() {
    this.#closed = true;
    globalThis.removeEventListener?.("online", this.#onOnline);
    this.#wakeQueue?.();
    this.#realtime?.close();
    for (const channel of this.#channels.values()) clearTimeout(channel.retryTimer);
  }

  /**
   * Follow a channel's events. `since`: the channel seq your state already reflects (the `last_seq` of the
   * history page or channel you loaded); omitted, the channel's current seq is fetched first. Events that
   * change messages are de-duplicated by seq and a gap is filled from /sync before later events, so
   * listeners see every change once, in order. Returns the function that stops following.
   */
  watch(channelId, { since } = {}) {
    const id = String(channelId);
    if (this.#channels.has(id)) throw new Error(`already watching channel ${id}`);
    const channel = { id, seq: since ?? null, syncing: false, buffer: [], stop: null, retryTimer: 0 };
    Object.assign(channel, { online: new Set(), attempts: 0, starting: false });
    this.#channels.set(id, channel);
    if (this.#realtime) this.#follow(channel);
    return () => {
      if (this.#channels.get(id) !== channel) return;
      this.#channels.delete(id);
      clearTimeout(channel.retryTimer);
      channel.stop?.();
    };
  }

  /** Whether a channel is followed with watch(). */
  watching(channelId) {
    return this.#channels.has(String(channelId));
  }

  /** The last channel seq delivered to listeners (null before the first). */
  lastSeq(channelId) {
    return this.#channels.get(String(channelId))?.seq ?? null;
  }

  /** The ids of the users with the channel open right now (realtime presence of watched channels). */
  online(channelId) {
    return new Set(this.#channels.get(String(channelId))?.online ?? []);
  }

  async #follow(channel) {
    if (channel.stop || channel.starting) return;
    if (channel.seq === null) {
      channel.starting = true;
      try {
        channel.seq = (await this.channel(channel.id)).last_seq;
      } catch (error) {
        this.#emit("error", { error, channel_id: channel.id, during: "watch" }); // Retried on reconnect.
        return;
      } finally {
        channel.starting = false;
      }
      if (this.#channels.get(channel.id) !== channel) return;
    }
    channel.stop = this.#realtime.subscribe(`chat.channel.${channel.id}`, ({ data }) => this.#receive(channel, data), {
      onRecoveryFailed: () => this.#resync(channel),
      onPresence: ({ op, member }) => this.#presenceChanged(channel, op, member),
      onError: (_topic, error) => this.#emit("error", { error, channel_id: channel.id, during: "subscribe" }),
    });
    if (this.#realtime.state === "connected") this.#barrier(channel);
  }

  // On every connection: the hub answers a socket's requests in order, so once presence() answers the
  // subscription is live, and a sync from the last seq delivered covers whatever was published before it
  // (or while the socket was down); what the hub also replays is then dropped as seen.
  async #barrier(channel) {
    let members;
    try {
      members = await this.#realtime.presence(`chat.channel.${channel.id}`);
    } catch {
      return; // The next connection tries again.
    }
    if (this.#channels.get(channel.id) !== channel) return;
    channel.online = new Set(members.map((member) => member.id));
    this.#emit("online", { channel_id: channel.id, user_ids: [...channel.online] });
    this.#resync(channel);
  }

  #presenceChanged(channel, op, member) {
    if (op === "join") channel.online.add(member.id);
    else channel.online.delete(member.id);
    this.#emit("online", { channel_id: channel.id, user_ids: [...channel.online] });
  }

  #receive(channel, data) {
    if (channel.syncing) {
      channel.buffer.push(data);
      return;
    }
    if (typeof data.seq === "number" && channel.seq !== null) {
      if (data.seq <= channel.seq) return; // Delivered already, live or by a sync.
      if (data.seq > channel.seq + 1) {
        channel.buffer.push(data);
        this.#resync(channel);
        return;
      }
    }
    if (typeof data.seq === "number") channel.seq = data.seq;
    this.#emitEvent(data);
  }

  async #resync(channel) {
    if (channel.syncing || this.#channels.get(channel.id) !== channel) return;
    channel.syncing = true;
    const start = channel.seq ?? 0;
    let since = start;
    try {
      for (;;) {
        const page = await this.sync(channel.id, since, { limit: SYNC_PAGE });
        if (this.#channels.get(channel.id) !== channel) return;
        for (const message of page.messages) {
          channel.seq = Math.max(channel.seq ?? 0, message.revision);
          this.#emitEvent(syncedEvent(message, start));
        }
        // The server's cursor: pages neither overlap nor leave a gap (`last_seq` is the channel's newest
        // number, not the end of the page).
        since = Math.max(since, page.next_since);
        if (!page.has_more) {
          channel.seq = Math.max(channel.seq ?? 0, since);
          break;
        }
      }
      channel.attempts = 0;
    } catch (error) {
      this.#emit("error", { error, channel_id: channel.id, during: "sync" });
      // Still "syncing": live events keep buffering until the retry has filled the gap.
      const delay = Math.random() * Math.min(this.#retryMax, this.#retryInitial * 2 ** channel.attempts++);
      channel.retryTimer = setTimeout(() => {
        channel.syncing = false;
        this.#resync(channel);
      }, delay);
      return;
    }
    channel.syncing = false;
    const buffered = channel.buffer;
    channel.buffer = [];
    for (const data of buffered) this.#receive(channel, data);
  }

  #emitEvent(data) {
    this.#emit(data.type, data);
    this.#emit("*", data);
  }

  // ------------------------------------------------------------------ the send queue

  /** Sends not yet acknowledged, oldest first: {client_id, channel_id, body, state, attempts, error}. */
  pending(channelId) {
    const all = this.#queue.map((entry) => ({ ...entry }));
    return channelId === undefined ? all : all.filter((entry) => entry.channel_id === String(channelId));
  }

  /** Retry the queued sends now instead of after their backoff (e.g. a "retry" button). */
  retryNow() {
    this.#wakeQueue?.();
    this.#pump();
  }

  /** Drop a queued send (one the server keeps refusing, say); its send() promise rejects. */
  discard(clientId) {
    const index = this.#queue.findIndex((entry) => entry.client_id === clientId);
    if (index < 0 || this.#queue[index].state === "sending") return false;
    this.#dequeue(this.#queue[index]);
    this.#settle(clientId, null, new ChatError(0, { code: "discarded", detail: "The send was discarded." }));
    this.#wakeQueue?.();
    return true;
  }

  #settle(clientId, message, error) {
    const waiter = this.#waiters.get(clientId);
    this.#waiters.delete(clientId);
    if (error) waiter?.reject(error);
    else waiter?.resolve(message);
  }

  async #pump() {
    if (this.#pumping || this.#closed) return;
    this.#pumping = true;
    try {
      while (this.#queue.length && !this.#closed) {
        const entry = this.#queue[0];
        entry.state = "sending";
        this.#queueChanged();
        try {
          const message = await this.request("POST", `/channels/${this.#id(entry.channel_id)}/messages`, {
            body: entry.body,
          });
          this.#dequeue(entry);
          this.#emit("send.acked", { client_id: entry.client_id, channel_id: entry.channel_id, message });
          this.#settle(entry.client_id, message, null);
        } catch (error) {
          if (error instanceof ChatError && error.retryable) {
            Object.assign(entry, { state: "waiting", error: error.detail, attempts: entry.attempts + 1 });
            this.#queueChanged();
            const backoff = Math.random() * Math.min(this.#retryMax, this.#retryInitial * 2 ** entry.attempts);
            await this.#pause(error.retryAfter ?? backoff);
            if (this.#queue[0] === entry) entry.state = "queued";
            continue;
          }
          // Refused for good (no permission, muted, blocked word…): retrying cannot help.
          this.#dequeue(entry);
          this.#emit("send.failed", { client_id: entry.client_id, channel_id: entry.channel_id, error });
          this.#settle(entry.client_id, null, error);
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  // Wait before the next attempt; retryNow() (going online, reconnecting) cuts the wait short.
  #pause(milliseconds) {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#wakeQueue = null;
        resolve();
      };
      const timer = setTimeout(wake, milliseconds);
      this.#wakeQueue = wake;
    });
  }

  #dequeue(entry) {
    const index = this.#queue.indexOf(entry);
    if (index >= 0) this.#queue.splice(index, 1);
    this.#queueChanged();
  }

  #queueChanged() {
    if (this.#storage && this.#storageKey) {
      try {
        const stored = this.#queue.map(({ client_id, channel_id, body, queued_at }) => ({
          client_id,
          channel_id,
          body,
          queued_at,
        }));
        if (stored.length) this.#storage.setItem(this.#storageKey, JSON.stringify(stored));
        else this.#storage.removeItem(this.#storageKey);
      } catch {
        // Storage full or blocked (private mode): the queue still lives in memory.
      }
    }
    this.#emit("queue", { pending: this.pending() });
  }

  // Sends persisted by an earlier page of the same user on this server; their client_ids make a send that
  // did reach the server before the page went away come back as the stored message instead of twice.
  #restoreQueue() {
    if (!this.#storage) return;
    let stored = [];
    try {
      stored = JSON.parse(this.#storage.getItem(this.#storageKey) ?? "[]");
    } catch {
      return;
    }
    const known = new Set(this.#queue.map((entry) => entry.client_id));
    const restored = stored
      .filter((item) => item?.client_id && item.channel_id && item.body && !known.has(item.client_id))
      .map((item) => ({ ...item, attempts: 0, state: "queued", error: null }));
    this.#queue.unshift(...restored);
    this.#queueChanged();
  }
}
