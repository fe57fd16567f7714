using System.CommandLine;
using Lowbit.Backends;
using Lowbit.Cuda;
using Lowbit.Generation;
using Lowbit.Models;
using Lowbit.Quantization.Configs;
using Lowbit.Tensors;

namespace Lowbit.Cli.Commands;

/// <summary>Options several commands share, and the one place errors become a single line.</summary>
internal static class CommonOptions
{
    /// <summary>The model that ships with the CLI (Karpathy's stories260K, imported from llama2.c).</summary>
    public static string BundledModel => Path.Combine(AppContext.BaseDirectory, "models", "stories260K");

    public static Option<string?> Model(bool required = false) => new("--model", "-m")
    {
        Description = required
            ? "Model directory (Hugging Face layout: config.json, *.safetensors, tokenizer)."
            : "Model directory (Hugging Face layout: config.json, *.safetensors, tokenizer); default: the bundled stories260K.",
        Required = required,
    };

    public static Option<int?> Threads() => new("--threads", "-t")
    {
        Description = "CPU threads (default: all cores).",
    };

    public static Option<string> Device() => new("--device")
    {
        Description = "Where to run: cpu, cuda (an NVIDIA GPU; only its driver is needed) or auto (cuda when a GPU is found, else cpu).",
        DefaultValueFactory = _ => "cpu",
    };

    /// <summary>The backend for <c>--device NAME</c>; null means the CPU (LanguageModel makes it with --threads).</summary>
    /// <exception cref="ArgumentException">An unknown name.</exception>
    /// <exception cref="NotSupportedException">cuda without a driver or a GPU.</exception>
    public static IBackend? OpenDevice(string? name) => name switch
    {
        null or "cpu" => null,
        "cuda" => CudaBackend.Open(),
        "auto" => CudaBackend.IsAvailable() ? CudaBackend.Open() : null,
        _ => throw new ArgumentException($"--device: use cpu, cuda or auto; got \"{name}\"."),
    };

    public static Option<string?> Quant() => new("--quant")
    {
        Description = $"Quantize the linear layers at load time: {string.Join(", ", QuantConfigs.Names)} (torchao's names); none: as stored.",
    };

    /// <summary>--temperature, --top-k, --top-p and --seed: how decode picks each token.</summary>
    public static SamplingOptionSet Sampling() => new(
        new Option<float>("--temperature") { Description = "0 is greedy; higher is more random.", DefaultValueFactory = _ => 0f },
        new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0: all).", DefaultValueFactory = _ => 0 },
        new Option<float>("--top-p") { Description = "Sample among the smallest set of tokens whose probability reaches p (1: all).", DefaultValueFactory = _ => 1f },
        new Option<ulong?>("--seed") { Description = "Random seed for reproducible sampling." });

    /// <summary>How decode picks its tokens, for a table's note: greedy, or sampled at T with its cuts.</summary>
    public static string DescribeSampling(SamplingOptions sampling) => sampling.Temperature == 0f ? "greedy"
        : $"sampled at T {sampling.Temperature:G}{(sampling.TopK > 0 ? $", top-k {sampling.TopK}" : "")}{(sampling.TopP < 1f ? $", top-p {sampling.TopP:G}" : "")}";

    public static Option<string> KvCache() => new("--kv-cache")
    {
        Description = "The KV cache's element type: f32, bf16 (half the memory; attention reads half the bytes at long contexts) or auto (bf16 on a GPU with tensor cores, f32 on the CPU).",
        DefaultValueFactory = _ => "auto",
    };

    /// <summary>The dtype for <c>--kv-cache NAME</c>; null for auto (the backend's preference).</summary>
    public static DType? ParseKvCache(string? name) => name switch
    {
        null or "auto" => null,
        "f32" => DType.F32,
        "bf16" => DType.BF16,
        _ => throw new ArgumentException($"--kv-cache: use auto, f32 or bf16; got \"{name}\"."),
    };

    public static ModelLoadOptions LoadOptions(int? threads, int? maxSequenceLength = null, string? quant = null, string? device = null, string? kvCache = null)
    {
        if (threads is < 1)
            throw new ArgumentException($"--threads must be at least 1; got {threads}.");
        var quantization = ParseQuant(quant);
        var cacheType = ParseKvCache(kvCache);
        return new ModelLoadOptions
        {
            Threads = threads,
            MaxSequenceLength = maxSequenceLength,
            Quantization = quantization,
            KvCacheType = cacheType,
            Device = OpenDevice(device),
        };
    }

    /// <summary>The config for <c>--quant NAME</c>, or null without one or for "none" (the weights as stored).</summary>
    public static IQuantConfig? ParseQuant(string? name)
    {
        if (name is null or "none")
            return null;
        try
        {
            return QuantConfigs.Parse(name);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"--quant: {e.Message}", e);
        }
    }

    /// <summary>One line on stderr saying what load-time quantization did (nothing without --quant).</summary>
    public static void PrintQuantization(LanguageModel model)
    {
        if (model.QuantizationReport is { } report)
            Console.Error.WriteLine(report.Summary());
    }

    /// <summary>Runs a command body; a failure prints one line naming what is wrong and exits 1.</summary>
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or NotSupportedException
                                      or UnauthorizedAccessException or InvalidOperationException)
        {
            Console.Out.Flush();
            Console.Error.WriteLine($"error: {e.Message.ReplaceLineEndings(" ")}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("cancelled");
            return 130;
        }
    }

    public static string FormatBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F2} MiB",
        >= 1L << 10 => $"{bytes / (double)(1L << 10):F1} KiB",
        _ => $"{bytes} B",
    };
}

/// <summary>The sampling options of a command (<see cref="CommonOptions.Sampling"/>).</summary>
internal sealed record SamplingOptionSet(Option<float> Temperature, Option<int> TopK, Option<float> TopP, Option<ulong?> Seed)
{
    public IEnumerable<Option> All => [Temperature, TopK, TopP, Seed];

    public SamplingOptions Parse(ParseResult r) => new(r.GetValue(Temperature), r.GetValue(TopK), r.GetValue(TopP), r.GetValue(Seed));
}
