"""The built-in RTMP server: handshake, chunk stream, AMF0 commands, one publisher per connection."""
