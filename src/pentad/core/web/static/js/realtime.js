// The browser client of Pentad's realtime hub (/ws); the protocol and the behaviour of
// pentad.core.realtime.client: subscribe with handlers, publish, presence, calls, acknowledgements as promises
// with timeouts, answers to the server's pings, reconnection with exponential backoff and full jitter, a
// fresh token for every socket, and resume: each topic is resubscribed from the last sequence number seen,
// so no event is missed or delivered twice. docs/realtime.md ("Browser client") shows how to use it.

/** protocol.CloseCode, plus the browser's own 1001 (going away) and 1006 (connection lost). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  BAD_MESSAGE: 4000,
  AUTH_FAILED: 4001,
  AUTH_TIMEOUT: 4002,
  CREDENTIALS_EXPIRED: 4003,
  CREDENTIALS_REVOKED: 4004,
  SLOW_CONSUMER: 4005,
  IDLE_TIMEOUT: 4006,
});

// A client bug, or a session that was revoked: reconnecting cannot help (the person signs in again).
const FINAL_CODES = new Set([CloseCode.BAD_MESSAGE, CloseCode.CREDENTIALS_REVOKED]);
// Only a new token helps: reconnect when the app gave getToken, stop with a fixed token.
const TOKEN_CODES = new Set([CloseCode.AUTH_FAILED, CloseCode.CREDENTIALS_EXPIRED]);
const PONG = '{"op":"pong"}';

/** A failed acknowledgement; `code` is a protocol.ErrorCode ("forbidden", "unknown_topic", ...). */
export class RealtimeError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "RealtimeError";
    this.code = code;
  }
}

/** The socket closed before the answer came, or the client is closed; `code` is the close code. */
export class RealtimeClosedError extends Error {
  constructor(code, reason = "") {
    super(`realtime connection closed (${code ?? "no code"}${reason ? `: ${reason}` : ""})`);
    this.name = "RealtimeClosedError";
    this.code = code;
    this.reason = reason;
  }
}

/** No answer within the acknowledgement timeout (the request may still have been carried out). */
export class RealtimeTimeoutError extends Error {
  constructor(op, milliseconds) {
    super(`realtime: no answer to ${op} within ${milliseconds} ms`);
    this.name = "RealtimeTimeoutError";
  }
}

function socketUrl(url) {
  const resolved = new URL(url ?? "/ws", window.location.href);
  resolved.protocol = resolved.protocol.replace(/^http/, "ws");
  return resolved.href;
}

// An application callback that throws must not break the client: report it as an uncaught error.
function safely(callback, ...args) {
  if (!callback) return;
  try {
    callback(...args);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}

function signal() {
  const handle = {};
  handle.promise = new Promise((resolve, reject) => Object.assign(handle, { resolve, reject }));
  handle.promise.catch(() => {}); // Rejected only for whoever awaits it.
  return handle;
}

export class RealtimeClient {
  #url;
  #token;
  #getToken;
  #onStateChange;
  #ackTimeout;
  #backoffInitial;
  #backoffMax;
  #refreshMargin;
  #state = "idle";
  #closed = false;
  #closedWith = null;
  #subscriptions = new Map();
  #pending = new Map();
  #ids = 0;
  #ws = null;
  #endSession = null;
  #connected = signal();
  #wake = null;
  #silenceLimit = 0;
  #silenceTimer = 0;
  #refreshTimer = 0;

  constructor({
    url,
    token,
    getToken,
    onStateChange,
    ackTimeout = 10_000,
    backoffInitial = 250,
    backoffMax = 30_000,
    refreshMargin = 30_000,
  } = {}) {
    if (!token === !getToken) throw new TypeError("RealtimeClient needs either token or getToken");
    this.#url = socketUrl(url);
    this.#token = token;
    this.#getToken = getToken;
    this.#onStateChange = onStateChange;
    this.#ackTimeout = ackTimeout;
    this.#backoffInitial = backoffInitial;
    this.#backoffMax = backoffMax;
    this.#refreshMargin = refreshMargin;
    this.principal = null;
    this.connectionId = null;
  }

  /** "idle", "connecting", "connected", "disconnected" (waiting to retry) or "closed" (for good). */
  get state() {
    return this.#state;
  }

  /** Start (and keep) connecting; resolves once connected, rejects if the client stops for good first. */
  connect() {
    if (this.#state === "idle") this.#run();
    return this.#connected.promise.then(() => undefined);
  }

  /** Close the socket and stop reconnecting; unanswered requests reject with RealtimeClosedError. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.();
    this.#endSession?.(CloseCode.NORMAL, "closed by the client");
    this.#finish(CloseCode.NORMAL, "closed by the client");
  }

  /**
   * Follow `topic`: handler({topic, seq, epoch, ts, data}) gets every event once, in order, across
   * reconnections. Returns the function that unsubscribes. Options: since with its epoch (resume after an
   * event seen earlier), onRecoveryFailed(topic) (events may have been missed: refetch over REST),
   * onPresence({op, topic, member}), onError(topic, error) (the server refused or ended the subscription).
   */
  subscribe(topic, handler, { since = null, epoch = null, onRecoveryFailed, onPresence, onError } = {}) {
    if (this.#subscriptions.has(topic)) throw new Error(`already subscribed to ${topic}`);
    if ((since === null) !== (epoch === null)) throw new TypeError("since and epoch go together");
    const subscription = { topic, handler, onRecoveryFailed, onPresence, onError, seq: since, epoch };
    Object.assign(subscription, { live: false, sentOn: null });
    this.#subscriptions.set(topic, subscription);
    const ws = this.#ws;
    if (this.#state === "connected") {
      this.#subscribeOn(ws, subscription).catch((error) => this.#restart(ws, String(error)));
    }
    return () => {
      if (this.#subscriptions.get(topic) !== subscription) return;
      this.#subscriptions.delete(topic);
      // Frames are handled in order, so this also ends a subscription still waiting for its answer.
      if (subscription.sentOn && subscription.sentOn === this.#ws) {
        this.#request(this.#ws, { op: "unsubscribe", topic }).catch(() => {});
      }
    };
  }

  /** Publish on a topic that lets clients publish; resolves to {seq, epoch}. */
  async publish(topic, data) {
    return this.#request(await this.#connection(), { op: "publish", topic, data });
  }

  /**
   * Call a server-side handler of the topic (TopicSpec.calls); resolves to its answer. Rejects with
   * RealtimeError ("call_failed" with the handler's message, "unknown_method", "forbidden", ...),
   * RealtimeClosedError if the socket ends first, RealtimeTimeoutError after `timeout` ms (default
   * ackTimeout). A call is not repeated on another socket: the handler may already have run.
   */
  async call(topic, method, data = {}, { timeout = this.#ackTimeout } = {}) {
    return this.#request(await this.#connection(), { op: "call", topic, method, data }, timeout);
  }

  /** The members present on a topic with presence: [{id, kind}, ...]. */
  async presence(topic) {
    return (await this.#request(await this.#connection(), { op: "presence", topic })).members;
  }

  // ------------------------------------------------------------------ connection

  async #run() {
    let attempt = 0;
    while (!this.#closed) {
      this.#setState("connecting");
      const { code, reason, connected, final } = await this.#session();
      if (this.#closed) return;
      if (final || FINAL_CODES.has(code) || (TOKEN_CODES.has(code) && !this.#getToken)) {
        this.#finish(code, reason);
        return;
      }
      if (connected) attempt = 0;
      const retryIn = Math.random() * Math.min(this.#backoffMax, this.#backoffInitial * 2 ** attempt);
      attempt += 1;
      this.#setState("disconnected", { code, reason, retryIn });
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, retryIn);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
  }

  // One socket: authenticate, resubscribe every topic (resuming), serve. Resolves when the socket ends.
  async #session() {
    let token;
    try {
      token = this.#getToken ? await this.#getToken() : this.#token;
    } catch (error) {
      return { code: null, reason: `getToken failed: ${error}`, connected: false };
    }
    // No token: nobody is signed in any more, so there is nothing to reconnect as.
    if (!token) return { code: null, reason: "getToken gave no token", connected: false, final: true };
    if (this.#closed) return { code: CloseCode.NORMAL, reason: "closed by the client", connected: false };
    const ws = new WebSocket(this.#url);
    this.#ws = ws;
    this.#expectWithin(this.#ackTimeout, ws);
    let connected = false;
    let done = false;
    let finished;
    const ended = new Promise((resolve) => {
      finished = resolve;
    });
    const end = (code, reason) => {
      if (done) return;
      done = true;
      ws.onopen = ws.onmessage = ws.onclose = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(CloseCode.NORMAL);
      clearTimeout(this.#silenceTimer);
      clearTimeout(this.#refreshTimer);
      this.#ws = null;
      this.#endSession = null;
      for (const subscription of this.#subscriptions.values()) subscription.live = false;
      for (const request of this.#pending.values()) {
        clearTimeout(request.timer);
        request.reject(new RealtimeClosedError(code, reason));
      }
      this.#pending.clear();
      finished({ code, reason, connected });
    };
    this.#endSession = end;
    ws.onclose = (event) => end(event.code, event.reason);
    ws.onmessage = (message) => {
      this.#expectWithin(this.#silenceLimit || this.#ackTimeout, ws);
      this.#dispatch(ws, JSON.parse(message.data));
    };
    ws.onopen = async () => {
      try {
        await this.#authenticate(ws, token);
        // Until every topic is subscribed on this socket, including those added meanwhile.
        let waiting;
        while ((waiting = [...this.#subscriptions.values()].filter((s) => s.sentOn !== ws)).length) {
          await Promise.all(waiting.map((subscription) => this.#subscribeOn(ws, subscription)));
        }
      } catch (error) {
        end(CloseCode.ABNORMAL, String(error));
        return;
      }
      if (done) return;
      connected = true;
      this.#setState("connected");
      this.#connected.resolve(ws);
    };
    return ended;
  }

  // Drop this socket (the loop reconnects), unless it is already gone.
  #restart(ws, reason) {
    if (this.#ws === ws) this.#endSession?.(CloseCode.ABNORMAL, reason);
  }

  async #authenticate(ws, token) {
    const result = await this.#request(ws, { op: "auth", token });
    this.principal = result.principal;
    this.connectionId = result.connection_id;
    this.#silenceLimit = (2 * result.heartbeat_interval + 5) * 1000;
    this.#expectWithin(this.#silenceLimit, ws);
    clearTimeout(this.#refreshTimer);
    if (result.expires_at !== null && this.#getToken) {
      // A fresh token on this socket before the current one expires (else the server closes with 4003).
      const lifetime = result.expires_at * 1000 - Date.now();
      const delay = Math.max(0, lifetime - Math.min(this.#refreshMargin, lifetime / 2));
      this.#refreshTimer = setTimeout(() => this.#refresh(ws), Math.min(delay, 2 ** 31 - 1));
    }
  }

  async #refresh(ws) {
    try {
      const token = await this.#getToken();
      if (this.#ws === ws) await this.#authenticate(ws, token);
    } catch (error) {
      // The socket keeps its credentials; at their expiry the server closes it (4003) and we reconnect.
      console.warn("realtime: the token refresh failed", error);
    }
  }

  // No frame (not even a ping) for two heartbeats: the connection is dead, whatever the socket says.
  #expectWithin(milliseconds, ws) {
    clearTimeout(this.#silenceTimer);
    this.#silenceTimer = setTimeout(() => this.#restart(ws, "the server went silent"), milliseconds);
  }

  async #subscribeOn(ws, subscription) {
    const { topic, seq, epoch } = subscription;
    const resuming = seq !== null;
    const request = resuming ? { op: "subscribe", topic, since: seq, epoch } : { op: "subscribe", topic };
    subscription.sentOn = ws;
    let result;
    try {
      result = await this.#request(ws, request);
    } catch (error) {
      if (!(error instanceof RealtimeError) || error.code === "unavailable") throw error;
      if (this.#subscriptions.get(topic) === subscription) {
        this.#subscriptions.delete(topic);
        safely(subscription.onError, topic, error);
      }
      return;
    }
    // Runs before the next frame is read (promise reactions run between message events), so the replayed
    // history and the live events after the acknowledgement find the subscription live.
    if (this.#subscriptions.get(topic) !== subscription || this.#ws !== ws) return;
    subscription.live = true;
    if (!result.recovered) {
      subscription.epoch = result.epoch;
      subscription.seq = result.seq;
      if (resuming) safely(subscription.onRecoveryFailed, topic);
    }
  }

  // ------------------------------------------------------------------ frames

  #dispatch(ws, frame) {
    const subscription = this.#subscriptions.get(frame.topic);
    switch (frame.op) {
      case "event":
        if (subscription?.live) this.#deliver(subscription, frame);
        break;
      case "ack":
        this.#answer(frame);
        break;
      case "ping":
        ws.send(PONG);
        break;
      case "join":
      case "leave":
        if (subscription?.live) {
          safely(subscription.onPresence, { op: frame.op, topic: frame.topic, member: frame.member });
        }
        break;
      case "reset":
        if (subscription) {
          subscription.epoch = frame.epoch;
          subscription.seq = frame.seq;
          safely(subscription.onRecoveryFailed, frame.topic);
        }
        break;
      case "unsubscribed":
        if (subscription) {
          this.#subscriptions.delete(frame.topic);
          const error = new RealtimeError(frame.reason, "the server ended the subscription");
          safely(subscription.onError, frame.topic, error);
        }
        break;
    }
  }

  #deliver(subscription, { topic, seq, epoch, ts, data }) {
    if (epoch === subscription.epoch && subscription.seq !== null && seq <= subscription.seq) return;
    subscription.epoch = epoch;
    subscription.seq = seq;
    safely(subscription.handler, { topic, seq, epoch, ts, data });
  }

  // ------------------------------------------------------------------ requests

  #request(ws, payload, timeout = this.#ackTimeout) {
    if (ws.readyState !== WebSocket.OPEN) return Promise.reject(new RealtimeClosedError(null, "not open"));
    const id = ++this.#ids;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new RealtimeTimeoutError(payload.op, timeout));
        // An unanswered subscribe leaves its topic in an unknown state: start again on a new socket.
        if (payload.op === "subscribe") this.#restart(ws, "no answer to subscribe");
      }, timeout);
      this.#pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...payload, id }));
    });
  }

  #answer(frame) {
    const request = this.#pending.get(frame.id);
    if (!request) return;
    this.#pending.delete(frame.id);
    clearTimeout(request.timer);
    if (frame.ok) request.resolve(frame.result ?? {});
    else request.reject(new RealtimeError(frame.error.code, frame.error.message));
  }

  // The open socket, after waiting up to ackTimeout for a (re)connection.
  async #connection() {
    if (this.#closed) throw this.#closedWith ?? new RealtimeClosedError(CloseCode.NORMAL, "closed");
    if (this.#state === "idle") this.connect();
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("realtime: not connected")), this.#ackTimeout);
    });
    try {
      return await Promise.race([this.#connected.promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  #setState(state, detail = {}) {
    if (this.#state === "connected" && state !== "connected") this.#connected = signal();
    this.#state = state;
    safely(this.#onStateChange, state, detail);
  }

  #finish(code, reason) {
    this.#closed = true;
    if (this.#state === "closed") return;
    this.#closedWith = new RealtimeClosedError(code, reason);
    this.#setState("closed", { code, reason });
    this.#connected.reject(this.#closedWith);
  }
}
