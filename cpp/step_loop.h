// How a team divides a recurrent layer's step loop.
//
// Directions first: each direction of a bidirectional layer gets its own members, and the
// two never wait for each other (one thread alone runs both).
//
// Within a direction the members split either
//  - the batch: member m owns sequences m, m + P, m + 2P, ... (interleaved, so that members
//    stay balanced as the active batch of a variable-length batch shrinks). Sequences are
//    independent, so members share nothing but the read-only weights and never wait for
//    each other; this is the default whenever each gets at least kMinRows rows. Or
//  - the hidden units: each member owns a slice of unit blocks, that is of gate columns,
//    but needs all of h_{t-1}, so members meet at a barrier every step and half of h crosses
//    between cores; used when the batch is too small to split (down to B = 1) and a step
//    has enough work.
// Measured on the 2-core VM (S2 forward, B32 H128): splitting units runs at 2.0 ms while
// the two vCPUs share a cache and at 3.8 ms (slower than one thread, 3.3 ms) while the host
// places them apart; splitting the batch does not depend on where the vCPUs are.
#pragma once

#include "common.h"
#include "threads.h"

#include <algorithm>
#include <atomic>

namespace lstm_native {

enum class StepSplit { kAuto = 0, kBatch = 1, kUnits = 2 };
StepSplit step_split_override();  // tests force a mode (threads.cpp)
void set_step_split_override(StepSplit split);

struct StepPlan {
  static constexpr Index kMinRows = 8;  // below, a 6-row register tile wastes too much
  int threads = 1;                      // team size
  int per_direction = 1;                // members per direction
  bool split_batch = false;             // else split units
  bool synchronised() const { return !split_batch && per_direction > 1; }
  bool operator==(const StepPlan& o) const {
    return threads == o.threads && per_direction == o.per_direction && split_batch == o.split_batch;
  }

  // row_local: the cell needs whole rows (cell_base.h), so members never split the units.
  static StepPlan make(int directions, Index batch, Index hidden, Index gate_columns, Index blocks,
                       bool row_local = false) {
    StepPlan plan;
    const int pool = get_num_threads();
    const double flops = 2.0 * batch * hidden * gate_columns;  // per direction and step
    // One thread runs both directions when there are fewer threads, or when a step is so small
    // that waking a second thread every call costs more than it saves (a lone sequence's
    // bidirectional layer on a busy machine waited milliseconds for its second thread).
    if (pool < directions || threads_for(directions * flops, 1e6) < directions) return plan;
    const int per = pool / directions;
    const StepSplit forced = step_split_override();
    const int by_rows = static_cast<int>(std::min<Index>(per, forced == StepSplit::kBatch || (row_local && forced ==
                                                         StepSplit::kUnits) ? batch : batch / kMinRows));
    if ((forced != StepSplit::kUnits || row_local) && by_rows >= 2) {
      plan.split_batch = true;
      plan.per_direction = by_rows;
    } else if (row_local) {
      plan.per_direction = 1;
    } else {
      plan.per_direction = static_cast<int>(std::max<Index>(1, std::min<Index>({per, threads_for(flops, 1e6), blocks})));
    }
    plan.threads = directions * plan.per_direction;
    return plan;
  }
};

// A member's work: one direction's unit blocks [block_begin, block_end) for rows
// first_row, first_row + row_step, ...
struct StepShare {
  int direction;
  int member, members;  // its rank among the direction's members
  Index block_begin, block_end;
  Index first_row, row_step;
  // How many of the first `active` rows are this member's.
  Index rows_of(Index active) const {
    return active > first_row ? (active - first_row + row_step - 1) / row_step : 0;
  }
  // Its first row at or after `row`.
  Index first_row_from(Index row) const {
    return row <= first_row ? first_row : row + (row_step - (row - first_row) % row_step) % row_step;
  }
};

// Member `id`'s shares (two when one thread runs both directions); returns how many.
inline int step_shares(const StepPlan& plan, int id, int directions, Index blocks, StepShare* out) {
  if (plan.threads == 1) {
    for (int d = 0; d < directions; ++d) out[d] = {d, 0, 1, 0, blocks, 0, 1};
    return directions;
  }
  const int per = plan.per_direction, d = id / per, m = id % per;
  if (plan.split_batch) {
    out[0] = {d, m, per, 0, blocks, m, per};
  } else {
    Index b, e;
    share(blocks, m, per, &b, &e);
    out[0] = {d, m, per, b, e, 0, 1};
  }
  return 1;
}

}  // namespace lstm_native
