extension Array where Element == Double {
    /// The median of the elements (the mean of the middle two for an even count); the array is not
    /// empty. The commands report the median of repeated timings (`--repeat`).
    package var median: Double {
        let sorted = self.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}
