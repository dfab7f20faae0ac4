-- mod_auth_openidc (2.4.x) compares a certificate-bound token's cnf["x5t#S256"] with the
-- TB_SSL_CLIENT_CERT_FINGERPRINT request variable, which nothing in Apache sets by itself.
-- This access_checker hook (it runs before authentication) sets it from mod_ssl's verified
-- client certificate, as RFC 8705 §3.1 defines the value: base64url(SHA-256(DER)), no padding.
-- Lua 5.3 (Debian's mod_lua) has 64-bit integers and bit operators, so SHA-256 fits here;
-- r:base64_decode is not used because it drops a trailing zero byte of binary output.

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
local M = 0xffffffff

local function rotr(x, n)
  return ((x >> n) | (x << (32 - n))) & M
end

local function sha256(message)
  local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
  local length = #message
  message = message .. '\128' .. string.rep('\0', (55 - length) % 64) .. string.pack('>I8', length * 8)
  for offset = 1, #message, 64 do
    local w = { string.unpack('>' .. string.rep('I4', 16), message, offset) }
    for i = 17, 64 do
      local s0 = rotr(w[i - 15], 7) ~ rotr(w[i - 15], 18) ~ (w[i - 15] >> 3)
      local s1 = rotr(w[i - 2], 17) ~ rotr(w[i - 2], 19) ~ (w[i - 2] >> 10)
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M
    end
    local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
    for i = 1, 64 do
      local t1 = (hh + (rotr(e, 6) ~ rotr(e, 11) ~ rotr(e, 25)) + ((e & f) ~ (~e & g)) + K[i] + w[i]) & M
      local t2 = ((rotr(a, 2) ~ rotr(a, 13) ~ rotr(a, 22)) + ((a & b) ~ (a & c) ~ (b & c))) & M
      a, b, c, d, e, f, g, hh = (t1 + t2) & M, a, b, c, (d + t1) & M, e, f, g
    end
    h[1], h[2], h[3], h[4] = (h[1] + a) & M, (h[2] + b) & M, (h[3] + c) & M, (h[4] + d) & M
    h[5], h[6], h[7], h[8] = (h[5] + e) & M, (h[6] + f) & M, (h[7] + g) & M, (h[8] + hh) & M
  end
  return string.pack('>' .. string.rep('I4', 8), table.unpack(h))
end

local ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local VALUE = {}
for i = 1, 64 do
  VALUE[ALPHABET:byte(i)] = i - 1
end

local function base64_decode(text)
  local out, bits, count = {}, 0, 0
  for i = 1, #text do
    local v = VALUE[text:byte(i)]
    if v ~= nil then
      bits, count = (bits << 6) | v, count + 6
      if count >= 8 then
        count = count - 8
        out[#out + 1] = string.char((bits >> count) & 0xff)
      end
    end
  end
  return table.concat(out)
end

local function base64url(bytes)
  local out = {}
  for i = 1, #bytes, 3 do
    local b1, b2, b3 = bytes:byte(i, i + 2)
    local n = (b1 << 16) | ((b2 or 0) << 8) | (b3 or 0)
    local chars = (b2 == nil) and 2 or ((b3 == nil) and 3 or 4)
    for j = 1, chars do
      local v = (n >> (18 - 6 * (j - 1))) & 0x3f
      out[#out + 1] = ALPHABET:sub(v + 1, v + 1)
    end
  end
  return (table.concat(out):gsub('%+', '-'):gsub('/', '_'))
end

function certificate_thumbprint(r)
  if r:ssl_var_lookup('SSL_CLIENT_VERIFY') == 'SUCCESS' then
    local pem = r:ssl_var_lookup('SSL_CLIENT_CERT')
    local body = pem:gsub('%-%-%-%-%-[A-Z ]+%-%-%-%-%-', '')
    r.subprocess_env['TB_SSL_CLIENT_CERT_FINGERPRINT'] = base64url(sha256(base64_decode(body)))
  end
  return apache2.DECLINED
end
