// Types of chat-sdk.js, the browser SDK of Pentad's chat. See docs/chat.md. The shapes mirror the server's
// pentad/apps/chat/schemas.py and events.py; ids are UUID strings, times ISO 8601 strings.

import type { ConnectionState, StateDetail } from "../js/realtime.js";

export type Uuid = string;
export type Json = { [key: string]: unknown };

// ------------------------------------------------------------------ REST shapes

export interface ChatUser {
  id: Uuid;
  external_id: string;
  handle: string;
  name: string;
  image_url: string | null;
  role: "user" | "moderator" | "admin" | "bot" | string;
  presence: "online" | "away" | "offline" | string;
  last_seen_at: string | null;
}

export interface UserToken {
  token: string;
  expires_at: string;
  user: ChatUser;
}

export type ChannelKind = "public" | "private" | "direct" | "group";

export interface Channel {
  id: Uuid;
  kind: ChannelKind;
  name: string;
  topic: string;
  data: Json;
  created_by: Uuid | null;
  /** The channel's latest event sequence number. */
  last_seq: number;
  last_message_at: string | null;
  slow_mode_seconds: number;
  archived_at: string | null;
  created_at: string;
}

/** A channel as you see it, with your read state. */
export interface ChannelState extends Channel {
  role: "owner" | "moderator" | "member" | null;
  last_read_seq: number;
  unread_count: number;
  unread_mentions: number;
  member_count: number;
  /** Direct and group channels: everyone in it. */
  members: ChatUser[];
}

export interface Member {
  user: ChatUser;
  role: string;
  last_read_seq: number;
  last_delivered_seq: number;
  last_read_at: string | null;
  joined_at: string;
}

export interface Invite {
  id: Uuid;
  channel: Channel;
  invited_by: Uuid | null;
  created_at: string;
}

export interface AttachmentRef {
  id: Uuid;
  filename: string;
  content_type: string;
  size: number;
  width: number | null;
  height: number | null;
  /** Signed download URL (expires). */
  url: string;
  thumbnail_url: string | null;
}

export interface ReactionCount {
  emoji: string;
  count: number;
  /** The first reactors (up to 20), oldest first. */
  user_ids: Uuid[];
}

export interface Message {
  id: Uuid;
  channel_id: Uuid;
  /** Position in the channel, assigned when sent; history cursors page by it. */
  seq: number;
  /** Channel seq of the last change to this message (edit, delete, reaction, pin, reply). */
  revision: number;
  client_id: string | null;
  user: ChatUser | null;
  parent_id: Uuid | null;
  type: string;
  text: string;
  /** Markdown rendered and sanitised by the server: the only field to insert as HTML. */
  html: string;
  payload: Json | null;
  mentioned_user_ids: Uuid[];
  mentions_channel: boolean;
  attachments: AttachmentRef[];
  reactions: ReactionCount[];
  reply_count: number;
  last_reply_at: string | null;
  pinned_at: string | null;
  edited_at: string | null;
  deleted_at: string | null;
  created_at: string;
}

export interface MessagePage {
  /** Oldest first. */
  messages: Message[];
  has_more: boolean;
  last_seq: number;
}

export interface SyncPage {
  /** Ordered by revision. */
  messages: Message[];
  /** More changes wait: ask again with `since` = `next_since`. */
  has_more: boolean;
  /** The next page's `since`: every change with `revision <= next_since` has been sent. */
  next_since: number;
  /** The channel's newest sequence number, not the end of this page. */
  last_seq: number;
}

export interface MessageEdit {
  text: string;
  payload: Json | null;
  edited_by: Uuid | null;
  created_at: string;
}

export interface Restriction {
  id: Uuid;
  channel_id: Uuid | null;
  user_id: Uuid;
  kind: "ban" | "mute";
  reason: string;
  expires_at: string | null;
  created_by: Uuid | null;
  created_at: string;
}

export interface Report {
  id: Uuid;
  channel_id: Uuid;
  message_id: Uuid;
  reporter_id: Uuid;
  reason: string;
  status: "open" | "resolved" | "dismissed";
  resolution: string;
  resolved_by: Uuid | null;
  resolved_at: string | null;
  created_at: string;
}

export interface SearchResult {
  message: Message;
  channel: { id: Uuid; name: string; kind: ChannelKind };
}

export interface SearchPage {
  /** Newest first. */
  results: SearchResult[];
  has_more: boolean;
  next_before: string | null;
}

export interface ChannelCreate {
  kind?: ChannelKind;
  name?: string;
  topic?: string;
  /** Chat user ids to add (direct: exactly one other). */
  members?: Uuid[];
  data?: Json;
}

export interface ChannelUpdate {
  name?: string;
  topic?: string;
  data?: Json;
  /** Moderators; 0 turns slow mode off. */
  slow_mode_seconds?: number;
}

/** The body of POST /channels/{id}/messages. */
export interface MessageFields {
  /** Default: a new one. A retry with the same client_id returns the original message. */
  client_id?: string;
  text?: string;
  type?: string;
  payload?: Json | null;
  parent_id?: Uuid | null;
  attachment_ids?: Uuid[];
  mentioned_user_ids?: Uuid[];
}

export interface SearchOptions {
  channel_id?: Uuid;
  author_id?: Uuid;
  since?: string;
  until?: string;
  has_attachment?: boolean;
  limit?: number;
  /** The previous page's next_before. */
  before?: string;
}

// ------------------------------------------------------------------ realtime events (events.py)

export interface MessageEvent {
  type: "message.new" | "message.updated" | "message.deleted";
  channel_id: Uuid;
  seq: number;
  message: Message;
  /** message.new of a thread reply: the thread's first message with its new reply_count. */
  parent: Message | null;
  /** Made by the SDK from /sync after a gap (not sent by the server). */
  synced?: true;
}

export interface ReactionEvent {
  type: "reaction.added" | "reaction.removed";
  channel_id: Uuid;
  seq: number;
  user_id: Uuid;
  emoji: string;
  message: Message;
}

export interface ReadEvent {
  type: "read.updated";
  channel_id: Uuid;
  user_id: Uuid;
  last_read_seq: number;
  last_delivered_seq: number;
}

export interface TypingEvent {
  type: "typing.start" | "typing.stop";
  channel_id: Uuid;
  user: ChatUser;
  parent_id: Uuid | null;
}

export interface MemberEvent {
  type: "member.added" | "member.removed" | "member.updated";
  channel_id: Uuid;
  user: ChatUser;
  role: string | null;
}

export interface ChannelEvent {
  type: "channel.updated" | "channel.archived" | "channel.unarchived";
  channel: Channel;
}

export interface PresenceEvent {
  type: "presence.updated";
  user: ChatUser;
}

/** On your own topic: a channel appeared or went away for you, or you were invited. */
export interface UserChannelEvent {
  type: "channel.added" | "channel.removed" | "invite.received";
  channel: Channel;
}

export interface MentionEvent {
  type: "mention.new";
  channel_id: Uuid;
  message: Message;
}

export type ChatEvent =
  | MessageEvent
  | ReactionEvent
  | ReadEvent
  | TypingEvent
  | MemberEvent
  | ChannelEvent
  | PresenceEvent
  | UserChannelEvent
  | MentionEvent;

// ------------------------------------------------------------------ SDK events

export interface PendingSend {
  client_id: string;
  channel_id: Uuid;
  body: MessageFields & { client_id: string };
  /** queued: waiting its turn; sending: on the wire; waiting: failed, retried after a backoff. */
  state: "queued" | "sending" | "waiting";
  attempts: number;
  /** Why the last attempt failed. */
  error: string | null;
  queued_at: string;
}

export interface ClientEvents {
  "message.new": MessageEvent;
  "message.updated": MessageEvent;
  "message.deleted": MessageEvent;
  "reaction.added": ReactionEvent;
  "reaction.removed": ReactionEvent;
  "read.updated": ReadEvent;
  "typing.start": TypingEvent;
  "typing.stop": TypingEvent;
  "member.added": MemberEvent;
  "member.removed": MemberEvent;
  "member.updated": MemberEvent;
  "channel.updated": ChannelEvent;
  "channel.archived": ChannelEvent;
  "channel.unarchived": ChannelEvent;
  "presence.updated": PresenceEvent;
  "channel.added": UserChannelEvent;
  "channel.removed": UserChannelEvent;
  "invite.received": UserChannelEvent;
  "mention.new": MentionEvent;
  /** Every realtime event above, whatever its type. */
  "*": ChatEvent;
  /** Who has a watched channel open right now changed. */
  online: { channel_id: Uuid; user_ids: Uuid[] };
  "connection.state": { state: ConnectionState } & StateDetail;
  /** The send queue changed. */
  queue: { pending: PendingSend[] };
  "send.acked": { client_id: string; channel_id: Uuid; message: Message };
  "send.failed": { client_id: string; channel_id: Uuid; error: ChatError };
  /** Something failed in the background: a watch, a subscription or a sync (retried). */
  error: { error: unknown; channel_id: Uuid; during: "watch" | "subscribe" | "sync" };
}

// ------------------------------------------------------------------ the client

/** A refused or failed request. */
export declare class ChatError extends Error {
  constructor(status: number, problem?: Json, retryAfter?: number | null);
  /** HTTP status; 0 when there was no answer (network, no token). */
  readonly status: number;
  /** The problem+json `code` (e.g. "slow_mode", "muted", "network", "signed_out"), or null. */
  readonly code: string | null;
  readonly detail: string;
  readonly problem: Json;
  /** Milliseconds from Retry-After, if the server sent it. */
  readonly retryAfter: number | null;
  /** The same request may succeed later (network, 408, 425, 429, 5xx). */
  readonly retryable: boolean;
}

export declare function newClientId(): string;

interface CommonOptions {
  /** The Pentad server; default: the one chat-sdk.js was loaded from. */
  baseUrl?: string;
  fetch?: typeof fetch;
  /** Keep unsent messages across page loads: true (localStorage) or a Storage-like object. */
  persistQueue?: boolean | Pick<Storage, "getItem" | "setItem" | "removeItem">;
  /** Options of the underlying RealtimeClient (milliseconds; see realtime.d.ts). */
  realtime?: { ackTimeout?: number; backoffInitial?: number; backoffMax?: number; refreshMargin?: number };
  /** First send retry delay ceiling, ms (doubles per failure, full jitter). */
  retryInitial?: number;
  /** Largest send retry delay ceiling, ms. */
  retryMax?: number;
}

export type ChatClientOptions = CommonOptions &
  (
    | { /** A fixed `pcu_` user token. */ token: string; getToken?: never }
    | {
        /**
         * Called when the client needs a token (first use, near expiry, after a 401 or a refused socket).
         * Resolve to a token, to the server API's UserToken ({token, expires_at, user}), or to null when
         * signed out.
         */
        getToken: () => Promise<string | UserToken | null>;
        token?: never;
      }
  );

export declare class ChatClient {
  constructor(options: ChatClientOptions);
  /** Your chat user, once known (getMe(), connect(), or a UserToken from getToken). */
  me: ChatUser | null;

  on<K extends keyof ClientEvents>(type: K, handler: (event: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(type: K, handler: (event: ClientEvents[K]) => void): void;

  /** Any client API call; `path` is below /api/chat. Rejects with ChatError. */
  request<T = unknown>(
    method: string,
    path: string,
    options?: { query?: Json; body?: unknown; form?: FormData; signal?: AbortSignal },
  ): Promise<T>;

  getMe(): Promise<ChatUser>;
  setPresence(status: "online" | "away" | "offline"): Promise<ChatUser>;
  users(options?: { q?: string; limit?: number; offset?: number }): Promise<ChatUser[]>;

  channels(options?: { includeArchived?: boolean }): Promise<ChannelState[]>;
  publicChannels(options?: { limit?: number; offset?: number }): Promise<Channel[]>;
  channel(channelId: Uuid): Promise<ChannelState>;
  createChannel(body: ChannelCreate): Promise<ChannelState>;
  openDirect(userId: Uuid): Promise<ChannelState>;
  updateChannel(channelId: Uuid, patch: ChannelUpdate): Promise<ChannelState>;
  archiveChannel(channelId: Uuid): Promise<ChannelState>;
  unarchiveChannel(channelId: Uuid): Promise<ChannelState>;
  joinChannel(channelId: Uuid): Promise<ChannelState>;
  leaveChannel(channelId: Uuid): Promise<null>;
  members(channelId: Uuid, options?: { limit?: number; offset?: number }): Promise<Member[]>;
  addMembers(channelId: Uuid, userIds: Uuid[], role?: "owner" | "moderator" | "member"): Promise<Member[]>;
  setMemberRole(channelId: Uuid, userId: Uuid, role: "owner" | "moderator" | "member"): Promise<Member>;
  removeMember(channelId: Uuid, userId: Uuid): Promise<null>;
  invite(channelId: Uuid, userIds: Uuid[]): Promise<{ invited: number }>;
  invites(): Promise<Invite[]>;
  acceptInvite(inviteId: Uuid): Promise<ChannelState>;
  declineInvite(inviteId: Uuid): Promise<null>;

  messages(channelId: Uuid, options?: { before?: number; after?: number; limit?: number }): Promise<MessagePage>;
  replies(messageId: Uuid, options?: { before?: number; after?: number; limit?: number }): Promise<MessagePage>;
  message(messageId: Uuid): Promise<Message>;
  messageHistory(messageId: Uuid): Promise<MessageEdit[]>;
  /** One page of changes since `since`, by revision; while `has_more`, ask again with `page.next_since`. */
  sync(channelId: Uuid, since: number, options?: { limit?: number }): Promise<SyncPage>;
  pins(channelId: Uuid): Promise<Message[]>;
  /** Queued and retried with the same client_id until acknowledged; resolves to the stored message. */
  send(channelId: Uuid, fields: MessageFields): Promise<Message>;
  edit(messageId: Uuid, patch: { text?: string; payload?: Json }): Promise<Message>;
  deleteMessage(messageId: Uuid): Promise<Message>;
  react(messageId: Uuid, emoji: string): Promise<Message>;
  unreact(messageId: Uuid, emoji: string): Promise<Message>;
  pin(messageId: Uuid): Promise<Message>;
  unpin(messageId: Uuid): Promise<Message>;
  markRead(channelId: Uuid, seq: number): Promise<ChannelState>;
  markDelivered(channelId: Uuid, seq: number): Promise<ChannelState>;
  typing(channelId: Uuid, options?: { active?: boolean; parentId?: Uuid | null }): Promise<null>;
  upload(channelId: Uuid, file: Blob, options?: { filename?: string; signal?: AbortSignal }): Promise<AttachmentRef>;
  deleteAttachment(attachmentId: Uuid): Promise<null>;
  search(q: string, options?: SearchOptions): Promise<SearchPage>;

  enablePush(registration: ServiceWorkerRegistration): Promise<PushSubscription>;
  disablePush(registration: ServiceWorkerRegistration): Promise<void>;

  report(messageId: Uuid, reason?: string): Promise<Report>;
  reports(options?: { status?: "open" | "resolved" | "dismissed"; limit?: number }): Promise<Report[]>;
  resolveReport(
    reportId: Uuid,
    body: { status: "resolved" | "dismissed"; resolution?: string; delete_message?: boolean },
  ): Promise<Report>;
  restrictions(channelId: Uuid): Promise<Restriction[]>;
  restrict(
    channelId: Uuid,
    body: { user_id: Uuid; kind: "ban" | "mute"; reason?: string; duration?: number },
  ): Promise<Restriction>;
  liftRestriction(channelId: Uuid, restrictionId: Uuid): Promise<null>;

  /** "idle" before connect(), then the realtime connection's state. */
  readonly connectionState: ConnectionState;
  /** Connect (your user topic and every watched channel); resolves once connected. */
  connect(): Promise<void>;
  close(): void;
  /**
   * Follow a channel. `since`: the channel seq your state reflects (a history page's or a channel's
   * `last_seq`); omitted, the current one is fetched. Returns the function that stops following.
   */
  watch(channelId: Uuid, options?: { since?: number }): () => void;
  watching(channelId: Uuid): boolean;
  /** The last channel seq delivered to listeners. */
  lastSeq(channelId: Uuid): number | null;
  /** Ids of the users who have a watched channel open now. */
  online(channelId: Uuid): Set<Uuid>;

  /** Sends not yet acknowledged, oldest first (of one channel, or all). */
  pending(channelId?: Uuid): PendingSend[];
  retryNow(): void;
  /** Drop a queued send that is not on the wire; its send() rejects with code "discarded". */
  discard(clientId: string): boolean;
}
