/* Copies between OCaml bytes/strings and a char Bigarray (a shared-memory
   mapping) for the TLV codec's in-place decoding and encoding (tlv.ml).
   The OCaml callers check every range; nothing here allocates, so the
   functions are [@@noalloc]. */
#include <string.h>

#include <caml/bigarray.h>
#include <caml/mlvalues.h>

/* big[off, off+len) -> bytes[boff, boff+len) */
value mycelium_tlv_blit_big_to_bytes(value big, value off, value b, value boff, value len) {
  memcpy(Bytes_val(b) + Long_val(boff), (const char*) Caml_ba_data_val(big) + Long_val(off),
         Long_val(len));
  return Val_unit;
}

/* string[soff, soff+len) -> big[off, off+len) */
value mycelium_tlv_blit_string_to_big(value s, value soff, value big, value off, value len) {
  memcpy((char*) Caml_ba_data_val(big) + Long_val(off), String_val(s) + Long_val(soff),
         Long_val(len));
  return Val_unit;
}
