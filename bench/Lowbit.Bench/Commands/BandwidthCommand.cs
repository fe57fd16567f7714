using Lowbit.Evaluation;
namespace Lowbit.Bench.Commands;

public static class BandwidthCommand
{
    public static readonly IReadOnlyDictionary<string, bool> Options = new Dictionary<string, bool>
    {
        ["--threads"] = true,
        ["--mb"] = true,
        ["--passes"] = true,
    };

    public static int Run(Args args)
    {
        int threads = args.Int("--threads", Environment.ProcessorCount);
        int mb = args.Int("--mb", 1024);
        int passes = args.Int("--passes", 7);
        if (mb < 64)
        {
            throw new ArgsException("--mb must be at least 64 (the buffer must be much larger than the 32 MiB L3)");
        }

        Console.WriteLine(MemoryBandwidth.Measure(threads, mb, passes));
        return 0;
    }
}
