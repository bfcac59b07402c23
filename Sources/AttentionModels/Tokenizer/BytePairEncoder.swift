/// The `BPE` model of a byte-level tokenizer: the bytes of one pre-token start as one token each,
/// then the adjacent pair of lowest merge rank is merged, again and again, the leftmost first
/// among equal ranks, until no adjacent pair has a merge.
///
/// As the `tokenizers` library does it: a priority queue of candidate pairs by (rank, position),
/// entries made stale by an earlier merge skipped when they come out, so a pre-token of n bytes
/// costs O(n log n). Merges are looked up by the ids of the pair, and produce the id of the
/// concatenated token.
struct BytePairEncoder: Sendable {
    /// A merge: its rank (its line in `merges`, lower first) and the id of the merged token.
    struct Merge: Sendable {
        var rank: Int32
        var id: Int32
    }

    /// The id of each byte's one-character token; -1 when the vocabulary lacks it.
    let byteIDs: [Int32]
    /// The merges by the ids of their pair (`left << 32 | right`).
    let merges: [UInt64: Merge]
    /// With `ignore_merges`, the ids of the vocabulary's byte-level tokens by the bytes they
    /// spell: a pre-token that is one of them is that token, without merging.
    let wholeTokenIDs: [[UInt8]: Int]?
    /// The token a byte without its own token becomes (`unk_token`); such bytes are dropped without one.
    let unknownID: Int32?
    /// Whether consecutive unknown bytes become a single unknown token (`fuse_unk`).
    let fusesUnknown: Bool

    /// The key of the pair (`left`, `right`) in ``merges``.
    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Buffers reused from one pre-token to the next.
    struct Scratch {
        var ids: [Int32] = []
        var next: [Int32] = []
        var previous: [Int32] = []
        var queue: [UInt64] = []
    }

    /// Appends the ids of the pre-token `bytes` to `result`.
    func appendIDs(of bytes: [UInt8], to result: inout [Int], scratch: inout Scratch) {
        if let wholeTokenIDs, let id = wholeTokenIDs[bytes] {
            result.append(id)
            return
        }
        scratch.ids.removeAll(keepingCapacity: true)
        var lastIsUnknown = false
        for byte in bytes {
            let id = byteIDs[Int(byte)]
            if id >= 0 {
                scratch.ids.append(id)
                lastIsUnknown = false
            } else if let unknownID {
                if !(fusesUnknown && lastIsUnknown) { scratch.ids.append(unknownID) }
                lastIsUnknown = true
            }
        }
        merge(&scratch)
        var position = scratch.ids.isEmpty ? -1 : 0
        while position >= 0 {
            result.append(Int(scratch.ids[position]))
            position = Int(scratch.next[position])
        }
    }

    /// Merges `scratch.ids` in place: afterwards the tokens are a list linked by `next` from 0.
    private func merge(_ scratch: inout Scratch) {
        let count = scratch.ids.count
        scratch.next.removeAll(keepingCapacity: true)
        scratch.previous.removeAll(keepingCapacity: true)
        for position in 0..<count {
            scratch.next.append(position + 1 < count ? Int32(position + 1) : -1)
            scratch.previous.append(Int32(position - 1))
        }
        if count < 2 { return }
        var queue = MergeQueue(storage: scratch.queue)
        for position in 0..<(count - 1) {
            if let merge = merges[Self.key(scratch.ids[position], scratch.ids[position + 1])] {
                queue.push(rank: merge.rank, position: position)
            }
        }
        while let (rank, position) = queue.pop() {
            // Skip an entry whose pair has changed since it was queued (or whose left token was merged away).
            let right = Int(scratch.next[position])
            guard right >= 0, scratch.ids[position] >= 0,
                let merge = merges[Self.key(scratch.ids[position], scratch.ids[right])], merge.rank == rank
            else { continue }
            scratch.ids[position] = merge.id
            scratch.ids[right] = -1
            let after = Int(scratch.next[right])
            scratch.next[position] = Int32(after)
            if after >= 0 { scratch.previous[after] = Int32(position) }
            let before = Int(scratch.previous[position])
            if before >= 0, let left = merges[Self.key(scratch.ids[before], merge.id)] {
                queue.push(rank: left.rank, position: before)
            }
            if after >= 0, let next = merges[Self.key(merge.id, scratch.ids[after])] {
                queue.push(rank: next.rank, position: position)
            }
        }
        scratch.queue = queue.storage
    }
}

/// A binary min-heap of (rank, position) pairs, packed in one integer each so that they compare
/// by rank, then by position.
private struct MergeQueue {
    var storage: [UInt64]

    init(storage: [UInt64]) {
        self.storage = storage
        self.storage.removeAll(keepingCapacity: true)
    }

    mutating func push(rank: Int32, position: Int) {
        storage.append(UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(position))
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard storage[child] < storage[parent] else { break }
            storage.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (rank: Int32, position: Int)? {
        guard let top = storage.first else { return nil }
        let last = storage.removeLast()
        if !storage.isEmpty {
            storage[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                guard left < storage.count else { break }
                let right = left + 1
                let smaller = right < storage.count && storage[right] < storage[left] ? right : left
                guard storage[smaller] < storage[parent] else { break }
                storage.swapAt(smaller, parent)
                parent = smaller
            }
        }
        return (Int32(bitPattern: UInt32(top >> 32)), Int(top & 0xFFFF_FFFF))
    }
}
