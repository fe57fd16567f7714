using System.Diagnostics;
using Lowbit.Tests.Models;

namespace Lowbit.Tests.Cli;

/// <summary>The `lowbit` command run as a separate process, as a user runs it: output, errors, exit codes.</summary>
public sealed class CliTests : IDisposable
{
    private readonly TempDir _dir = new();

    private sealed record Result(int ExitCode, string Output, string Error);

    private static Result Lowbit(params string[] args)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Lowbit.Cli.dll"));
        foreach (string a in args)
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return new Result(process.ExitCode, output.Result, error);
    }

    /// <summary>A failure is one line on stderr, starting "error:", naming <paramref name="mentions"/>.</summary>
    private static void AssertOneLineError(Result r, params string[] mentions)
    {
        Assert.Equal(1, r.ExitCode);
        string line = Assert.Single(r.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        foreach (string m in mentions)
            Assert.Contains(m, line);
        Assert.DoesNotContain("   at ", r.Error); // no stack trace
    }

    [Fact]
    public void Generate_runs_the_bundled_model_by_default()
    {
        var r = Lowbit("generate", "Once upon a time", "--max-tokens", "30");
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith("Once upon a time, there was a little girl named Lily.", r.Output);
        Assert.Matches(@"prompt 5 tokens, prefill [\d.]+ tok/s \| generated 30 tokens, decode [\d.]+ tok/s \| cpu \([^)]*\) \| peak memory [\d.]+ MiB", r.Error);
    }

    [Fact]
    public void Generate_with_a_seed_is_reproducible()
    {
        string[] args = ["generate", "Once", "-n", "40", "--temperature", "1.0", "--top-p", "0.9", "--seed", "123"];
        var a = Lowbit(args);
        Assert.Equal(0, a.ExitCode);
        Assert.Equal(a.Output, Lowbit(args).Output);
    }

    [Fact]
    public void Missing_model_directory_is_one_clear_line()
    {
        string missing = _dir.File("no-such-model");
        AssertOneLineError(Lowbit("generate", "hi", "--model", missing), missing);
    }

    [Fact]
    public void Bad_sampling_option_is_one_clear_line() =>
        AssertOneLineError(Lowbit("generate", "hi", "--temperature", "-1"), "temperature");

    [Fact]
    public void Unsupported_architecture_is_one_clear_line()
    {
        string model = _dir.File("gpt2");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "config.json"), """{"architectures": ["GPT2LMHeadModel"], "hidden_size": 8}""");
        AssertOneLineError(Lowbit("info", "--model", model), "GPT2LMHeadModel", "config.json");
    }

    [Fact]
    public void Info_describes_the_model()
    {
        var r = Lowbit("info");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("LlamaForCausalLM", r.Output);
        Assert.Contains("8 heads, 4 kv heads, head dim 8", r.Output);
        Assert.Contains("tokenizer.model (512 tokens)", r.Output);
        // 5 layers × (keys + values) × 4 kv heads × head dim 8 = 320 elements a position.
        Assert.Contains("kv cache       1.2 KiB a position in f32, 640 B in bf16", r.Output);
    }

    [Fact]
    public void Generate_with_a_bf16_kv_cache_runs_and_a_bad_cache_type_is_one_clear_line()
    {
        var r = Lowbit("generate", "Once upon a time", "-n", "8", "--kv-cache", "bf16");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("decode", r.Error);
        AssertOneLineError(Lowbit("generate", "hi", "--kv-cache", "int3"), "--kv-cache", "int3");
    }

    [Fact]
    public void Eval_prints_perplexity()
    {
        string text = _dir.File("text.txt");
        File.WriteAllText(text, string.Join("\n", File.ReadLines(Fixtures.Get("text", "tinystories-valid.txt")).Take(60)));
        var r = Lowbit("eval", "--text", text, "--ctx", "128");
        Assert.Equal(0, r.ExitCode);
        Assert.Matches(@"PPL = \d+\.\d{4} \+/- \d+\.\d{5}", r.Output);
    }

    [Fact]
    public void Import_of_a_truncated_llama2c_file_names_the_file()
    {
        string truncated = _dir.File("truncated.bin");
        byte[] bytes = File.ReadAllBytes(Fixtures.Get("llama2c", "stories260K.bin"));
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        string outDir = _dir.File("out");
        AssertOneLineError(Lowbit("import", "llama2c", truncated, "--tokenizer", Fixtures.Get("tokenizers", "tok512.bin"), "-o", outDir),
            "truncated.bin");
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Import_then_generate_round_trip()
    {
        string outDir = _dir.File("imported");
        var import = Lowbit("import", "llama2c", Fixtures.Get("llama2c", "stories260K.bin"), "--tokenizer", Fixtures.Get("tokenizers", "tok512.bin"),
            "-o", outDir, "--dtype", "bf16");
        Assert.Equal(0, import.ExitCode);
        var r = Lowbit("generate", "Once upon a time", "--model", outDir, "-n", "8");
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith("Once upon a time", r.Output);
        Assert.Contains("BF16", Lowbit("info", "--model", outDir).Output);
    }

    [Fact]
    public void Bench_prints_a_row_per_format_with_perplexity_and_divergence()
    {
        string text = _dir.File("text.txt");
        File.WriteAllText(text, string.Join("\n", File.ReadLines(Fixtures.Get("text", "tinystories-valid.txt")).Take(40)));
        var r = Lowbit("bench", "--quant", "none,int8wo", "--prompt", "8", "--gen", "4", "--reps", "1", "--bandwidth-mb", "64",
            "--text", text, "--ctx", "64", "--chunks", "4", "--threads", "1");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("| format | weights (MB) | decode tok/s |", r.Output);
        Assert.Matches(@"\| f32 \| 1\.0 \| [\d.]+ \| [\d.]+ \| .* \| \d+\.\d{4} ± \d+\.\d{4} \| 0 \| 100\.00% \|", r.Output);
        Assert.Matches(@"\| int8wo \| 0\.\d \| [\d.]+ \| .* \| \d+\.\d{6} ± \d+\.\d{6} \| \d+\.\d{2}% \|", r.Output);
    }

    [Fact]
    public void Bench_decodes_with_sampling_when_asked_and_says_so()
    {
        var r = Lowbit("bench", "--quant", "none", "--prompt", "8", "--gen", "16", "--reps", "1", "--bandwidth-mb", "64", "--threads", "1",
            "--temperature", "0.8", "--top-p", "0.9", "--seed", "3");
        Assert.Equal(0, r.ExitCode);
        Assert.Matches(@"\| f32 \| 1\.0 \| [\d.]+ \|", r.Output);
        Assert.Contains("decode 16 tokens (sampled at T 0.8, top-p 0.9)", r.Output);
        Assert.Contains("decode 4 tokens (greedy)", Lowbit("bench", "--quant", "none", "--prompt", "8", "--gen", "4", "--reps", "1", "--bandwidth-mb", "64", "--threads", "1").Output);
        AssertOneLineError(Lowbit("bench", "--quant", "none", "--temperature", "-1"), "temperature");
    }

    [Fact]
    public void Every_command_has_help()
    {
        foreach (string[] command in new[] { new[] { "generate" }, ["eval"], ["info"], ["import", "llama2c"], ["quantize"], ["bench"] })
        {
            var r = Lowbit([.. command, "--help"]);
            Assert.Equal(0, r.ExitCode);
            Assert.Contains("Usage:", r.Output);
        }
    }

    [Fact]
    public void Generate_with_quant_prints_what_was_quantized()
    {
        var r = Lowbit("generate", "Once upon a time", "-n", "8", "--quant", "int4wo-64");
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith("Once upon a time", r.Output);
        Assert.Contains("int4wo-64: 30 layers quantized, 6 left unquantized (K=172 not a multiple of 64: mlp.down_proj ×5; " +
                        "output head excluded by default: lm_head ×1)", r.Error);
    }

    [Fact]
    public void Greedy_generate_with_int8wo_matches_f32_on_the_first_tokens()
    {
        var f32 = Lowbit("generate", "Once upon a time", "-n", "8");
        var int8 = Lowbit("generate", "Once upon a time", "-n", "8", "--quant", "int8wo");
        Assert.Equal(0, int8.ExitCode);
        Assert.Equal(f32.Output, int8.Output);
        Assert.Contains("int8wo: 35 layers quantized, 1 left unquantized", int8.Error);
    }

    [Fact]
    public void Eval_with_quant_prints_perplexity()
    {
        string text = _dir.File("text.txt");
        File.WriteAllText(text, string.Join("\n", File.ReadLines(Fixtures.Get("text", "tinystories-valid.txt")).Take(60)));
        var r = Lowbit("eval", "--text", text, "--ctx", "128", "--quant", "int8wo");
        Assert.Equal(0, r.ExitCode);
        Assert.Matches(@"PPL = \d+\.\d{4} \+/- \d+\.\d{5}", r.Output);
        Assert.Contains("int8wo: 35 layers quantized", r.Error);
    }

    [Fact]
    public void Unknown_quant_name_is_one_clear_line_listing_the_valid_ones() =>
        AssertOneLineError(Lowbit("generate", "hi", "--quant", "int3wo"), "--quant", "int3wo", "int8wo", "int4wo-32", "int4wo-256");

    [Fact]
    public void Quant_none_is_the_model_as_stored_and_quantize_refuses_it()
    {
        var plain = Lowbit("generate", "Once upon a time", "-n", "8");
        var none = Lowbit("generate", "Once upon a time", "-n", "8", "--quant", "none");
        Assert.Equal(0, none.ExitCode);
        Assert.Equal(plain.Output, none.Output);
        AssertOneLineError(Lowbit("quantize", "--quant", "none", "-o", _dir.File("none")), "--quant", "none");
    }

    [Fact]
    public void Quantize_writes_a_directory_that_generate_loads()
    {
        string outDir = _dir.File("int4");
        var q = Lowbit("quantize", "--quant", "int4wo-32", "-o", outDir);
        Assert.Equal(0, q.ExitCode);
        Assert.Contains("int4wo-32: 30 layers quantized, 6 left unquantized", q.Output);
        var direct = Lowbit("generate", "Once upon a time", "-n", "8", "--quant", "int4wo-32");
        var loaded = Lowbit("generate", "Once upon a time", "-n", "8", "--model", outDir);
        Assert.Equal(0, loaded.ExitCode);
        Assert.Equal(direct.Output, loaded.Output);
        AssertOneLineError(Lowbit("quantize", "--quant", "int4wo-32", "-o", outDir), outDir, "not empty");
    }

    [Fact]
    public void Device_cuda_without_a_gpu_is_one_clear_line()
    {
        if (global::Lowbit.Cuda.CudaBackend.IsAvailable())
            Assert.Skip("A CUDA GPU is present here.");
        AssertOneLineError(Lowbit("generate", "--device", "cuda", "-n", "4"), "--device cuda", "no CUDA GPU");
    }

    [Fact]
    public void Device_auto_without_a_gpu_runs_on_the_cpu()
    {
        if (global::Lowbit.Cuda.CudaBackend.IsAvailable())
            Assert.Skip("A CUDA GPU is present here.");
        var r = Lowbit("generate", "Once upon a time", "--device", "auto", "-n", "8");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("| cpu (", r.Error);
    }

    [Fact]
    public void Unknown_device_is_one_clear_line() =>
        AssertOneLineError(Lowbit("generate", "--device", "tpu", "-n", "4"), "--device", "tpu");

    public void Dispose() => _dir.Dispose();
}
