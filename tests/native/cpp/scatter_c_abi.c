/* A C caller scatters an event through hits.h: sums, minima, the empty value, and a bad id refused. */
#include <stdio.h>
#include <string.h>

#include "juno_bridge/hits.h"

int main(void) {
  int32_t ids[4] = {0, 5, 5, 9};
  float npe[4] = {1.0f, 2.0f, 3.0f, 4.0f}, time[4] = {7.0f, 6.0f, 2.0f, 1.0f}, slot[2 * 10];
  jb_tensor_view v_ids = {.data = ids, .dtype = JB_DTYPE_INT32, .rank = 1, .shape = {4}},
                 v_npe = {.data = npe, .dtype = JB_DTYPE_FLOAT32, .rank = 1, .shape = {4}},
                 v_time = {.data = time, .dtype = JB_DTYPE_FLOAT32, .rank = 1, .shape = {4}},
                 v_slot = {.data = slot, .dtype = JB_DTYPE_FLOAT32, .rank = 2, .shape = {2, 10}};
  int bad = 0;
  if (jb_scatter_hits(&v_ids, &v_npe, &v_time, &v_slot, -1.0f) != JB_OK) ++bad;
  if (slot[0] != 1.0f || slot[5] != 5.0f || slot[9] != 4.0f || slot[1] != -1.0f) ++bad;
  if (slot[10 + 5] != 2.0f || slot[10 + 0] != 7.0f || slot[10 + 3] != -1.0f) ++bad;
  ids[2] = 10;
  if (jb_scatter_hits(&v_ids, &v_npe, &v_time, &v_slot, 0.0f) != JB_ERROR_INPUT) ++bad;
  if (strstr(jb_last_error_message(), "pmt id 10 (hit 2)") == NULL) ++bad;
  printf("last error: %s\n", jb_last_error_message());
  if (jb_scatter_hits(NULL, &v_npe, &v_time, &v_slot, 0.0f) != JB_ERROR_INVALID_ARGUMENT) ++bad;
  printf(bad ? "FAILED %d\n" : "OK\n", bad);
  return bad != 0;
}
