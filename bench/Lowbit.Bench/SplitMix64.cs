namespace Lowbit.Bench;

/// <summary>SplitMix64 (Steele, Lea, Flood 2014; the seeder of xoshiro): fast, seedable, good enough for test weights.</summary>
public struct SplitMix64(ulong state)
{
    private ulong _state = state;

    public ulong Next()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return Finalize(_state);
    }

    /// <summary>One step from a given state: a good 64-bit hash for deriving independent stream seeds.</summary>
    public static ulong Mix(ulong x) => Finalize(x + 0x9E3779B97F4A7C15UL);

    private static ulong Finalize(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
