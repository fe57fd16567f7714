using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Lowbit.Evaluation;

/// <summary>Result of one bandwidth measurement; GB/s are 1e9 bytes per second.</summary>
public sealed record BandwidthResult(int Threads, long Bytes, int Passes, double BestGBps, double MedianGBps, double WorstGBps)
{
    public override string ToString() =>
        $"read bandwidth: best {BestGBps:F1} GB/s, median {MedianGBps:F1} GB/s, worst {WorstGBps:F1} GB/s " +
        $"({Threads} thread{(Threads == 1 ? "" : "s")}, {Bytes / (1024 * 1024)} MiB buffer, {Passes} passes, {(Vector512.IsHardwareAccelerated ? "Vector512" : "Vector256")})";
}

/// <summary>
/// Streaming read bandwidth: each thread sums its contiguous slice of a buffer much larger than the L3 cache with
/// wide vector loads and 4 independent accumulators; a pass is timed from the common start to the last thread's end.
/// </summary>
public static unsafe class MemoryBandwidth
{
    /// <summary>Last checksum; published so the summing loop cannot be optimized away.</summary>
    public static double Sink { get; private set; }

    public static BandwidthResult Measure(int threads, int megabytes, int passes)
    {
        threads = Math.Max(1, threads);
        passes = Math.Max(1, passes);
        long bytes = (long)megabytes * 1024 * 1024;
        long floats = bytes / sizeof(float);
        floats -= floats % (threads * 64L); // whole 4 x Vector512 groups per thread
        bytes = floats * sizeof(float);

        float* data = (float*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        try
        {
            new Span<float>(data, 1).Clear();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                long per = floats / threads;
                var slice = data + (t * per);
                for (long i = 0; i < per; i += 1 << 20)
                {
                    new Span<float>(slice + i, (int)Math.Min(1 << 20, per - i)).Fill(1.0f); // touch every page
                }
            });

            var seconds = new double[passes];
            double sink = 0;
            using var start = new Barrier(threads + 1);
            using var done = new Barrier(threads + 1);
            var sums = new float[threads];
            var workers = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                int id = t;
                workers[t] = new Thread(() =>
                {
                    long per = floats / threads;
                    for (int p = 0; p < passes + 1; p++) // pass 0 is a warm-up
                    {
                        start.SignalAndWait();
                        sums[id] = Sum(data + (id * per), per);
                        done.SignalAndWait();
                    }
                })
                { IsBackground = true, Name = $"bw{t}" };
                workers[t].Start();
            }

            for (int pass = 0; pass < passes + 1; pass++)
            {
                start.SignalAndWait();
                long t0 = Stopwatch.GetTimestamp();
                done.SignalAndWait();
                double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                if (pass > 0)
                {
                    seconds[pass - 1] = s;
                }

                sink += sums.Sum();
            }

            foreach (var w in workers)
            {
                w.Join();
            }

            Sink = sink; // keep the sums observable

            var gbps = seconds.Select(s => bytes / s / 1e9).Order().ToArray();
            double median = gbps.Length % 2 == 1 ? gbps[gbps.Length / 2] : (gbps[(gbps.Length / 2) - 1] + gbps[gbps.Length / 2]) / 2;
            return new BandwidthResult(threads, bytes, passes, gbps[^1], median, gbps[0]);
        }
        finally
        {
            NativeMemory.AlignedFree(data);
        }
    }

    /// <summary>Sum of n floats (n a multiple of 64), 4 independent vector accumulators.</summary>
    private static float Sum(float* p, long n)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (long i = 0; i < n; i += 64)
            {
                a0 += Vector512.LoadAligned(p + i);
                a1 += Vector512.LoadAligned(p + i + 16);
                a2 += Vector512.LoadAligned(p + i + 32);
                a3 += Vector512.LoadAligned(p + i + 48);
            }

            return Vector512.Sum((a0 + a1) + (a2 + a3));
        }
        else
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (long i = 0; i < n; i += 32)
            {
                a0 += Vector256.LoadAligned(p + i);
                a1 += Vector256.LoadAligned(p + i + 8);
                a2 += Vector256.LoadAligned(p + i + 16);
                a3 += Vector256.LoadAligned(p + i + 24);
            }

            return Vector256.Sum((a0 + a1) + (a2 + a3));
        }
    }
}
