// The packed layout every recurrent kernel works in, for padded batches of
// variable-length sequences.
//
// Sequences are sorted once by length, longest first (stable, so without lengths the
// order is the identity). Step s then has batch[s] active sequences, always the first
// batch[s] in that order, and their rows are stored contiguously from offset[s]: the
// active batch shrinks as sequences end, and no work is done on padding. This is the
// layout of PyTorch's PackedSequence.
#pragma once

#include "common.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace lstm_native {

// Shape of a padded batch as the user holds it: (T, B, features) or, batch first, (B, T, features).
struct SequenceShape {
  Index steps = 0, batch = 0;
  bool batch_first = false;
  // Row (t, b) of the flattened (steps * batch) x features array.
  Index row(Index t, Index b) const { return batch_first ? b * steps + t : t * batch + b; }
};

struct Schedule {
  Index steps = 0;                 // longest length: steps actually run
  std::vector<Index> order;        // k -> the user's batch index of the k-th longest sequence
  std::vector<Index> length;       // k -> its length
  std::vector<Index> batch;        // s -> active sequences at step s; batch[steps] = 0
  std::vector<Index> offset;       // s -> first packed row of step s; offset[steps] = rows()

  Index rows() const { return offset[steps]; }
  Index sequences() const { return static_cast<Index>(order.size()); }
  // Time index of packed row k at step s: forward runs t = s, reverse runs each
  // sequence from its own last step backwards.
  Index time(int direction, Index s, Index k) const { return direction == 0 ? s : length[k] - 1 - s; }

  // lengths may be null (every sequence is `padded_steps` long); each must be in [0, padded_steps].
  static Schedule make(Index padded_steps, Index batch_size, const std::int64_t* lengths) {
    Schedule sc;
    sc.order.resize(batch_size);
    sc.length.resize(batch_size);
    std::iota(sc.order.begin(), sc.order.end(), Index(0));
    for (Index b = 0; b < batch_size; ++b) sc.length[b] = lengths ? static_cast<Index>(lengths[b]) : padded_steps;
    if (lengths) {
      std::stable_sort(sc.order.begin(), sc.order.end(),
                       [&](Index a, Index b) { return sc.length[a] > sc.length[b]; });
      std::vector<Index> sorted(batch_size);
      for (Index k = 0; k < batch_size; ++k) sorted[k] = sc.length[sc.order[k]];
      sc.length.swap(sorted);
    }
    sc.steps = batch_size ? sc.length[0] : 0;
    sc.batch.assign(sc.steps + 1, 0);
    sc.offset.assign(sc.steps + 1, 0);
    Index active = batch_size;
    for (Index s = 0; s < sc.steps; ++s) {
      while (active > 0 && sc.length[active - 1] <= s) --active;
      sc.batch[s] = active;
      sc.offset[s + 1] = sc.offset[s] + active;
    }
    return sc;
  }
};

}  // namespace lstm_native
