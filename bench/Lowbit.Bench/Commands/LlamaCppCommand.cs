using Lowbit.Evaluation;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Lowbit.Bench.Commands;

/// <summary>
/// Runs llama.cpp's llama-bench (built by the user beside the project; this tool never builds it) with
/// "-o json" and reports prefill (pp) and decode (tg) tokens per second, with bandwidth measured right before and after.
/// </summary>
public static class LlamaCppCommand
{
    public static readonly IReadOnlyDictionary<string, bool> Options = new Dictionary<string, bool>
    {
        ["--bin"] = true,
        ["--model"] = true,
        ["--threads"] = true,
        ["--prompt"] = true,
        ["--gen"] = true,
        ["--reps"] = true,
        ["--no-bandwidth"] = false,
        ["--bw-mb"] = true,
        ["--json-out"] = true,
    };

    public sealed record Row(string Model, string Type, long SizeBytes, long Params, string Test, int Threads,
        double TokensPerSecond, double StdDev, string BuildCommit);

    public static int Run(Args args)
    {
        string bin = args.RequiredString("--bin");
        var models = args.All("--model");
        if (models.Count == 0)
        {
            throw new ArgsException("option '--model' is required");
        }

        int threads = args.Int("--threads", 2), prompt = args.Int("--prompt", 128), gen = args.Int("--gen", 64), reps = args.Int("--reps", 3);
        bool measureBandwidth = !args.Flag("--no-bandwidth");
        int bwMb = args.Int("--bw-mb", 1024);

        string exe = Path.Combine(bin, OperatingSystem.IsWindows() ? "llama-bench.exe" : "llama-bench");
        if (!File.Exists(exe))
        {
            Console.Error.WriteLine($"error: {exe} not found (build llama.cpp yourself and pass its bin directory)");
            return 1;
        }

        BandwidthResult? before = measureBandwidth ? MemoryBandwidth.Measure(threads, bwMb, 5) : null;
        if (before is not null)
        {
            Console.WriteLine($"before: {before}");
        }

        var rows = new List<Row>();
        foreach (string model in models)
            rows.AddRange(Bench(exe, model, threads, prompt, gen, reps));

        BandwidthResult? after = measureBandwidth ? MemoryBandwidth.Measure(threads, bwMb, 5) : null;
        if (after is not null)
        {
            Console.WriteLine($"after:  {after}");
        }

        Console.WriteLine();
        Console.WriteLine($"| model | type | size (MiB) | params | test | threads | tok/s | ± |");
        Console.WriteLine($"|---|---|---:|---:|---|---:|---:|---:|");
        foreach (var r in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {Path.GetFileName(r.Model)} | {r.Type} | {r.SizeBytes / 1048576.0:F1} | {r.Params:N0} | {r.Test} | {r.Threads} | {r.TokensPerSecond:F2} | {r.StdDev:F2} |"));
        }

        if (args.String("--json-out") is { } jsonOut)
        {
            var doc = new { before, after, rows, date = DateTimeOffset.Now, machine = Environment.MachineName, cores = Environment.ProcessorCount };
            File.WriteAllText(jsonOut, JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }));
        }

        return 0;
    }

    /// <summary>Runs llama-bench on one model: a pp{prompt} and a tg{gen} row, each the mean of reps runs.</summary>
    public static IReadOnlyList<Row> Bench(string exe, string model, int threads, int prompt, int gen, int reps)
    {
        string[] benchArgs = ["-m", model, "-t", Inv(threads), "-p", Inv(prompt), "-n", Inv(gen), "-r", Inv(reps), "-o", "json"];
        Console.Error.WriteLine($"running: {exe} {string.Join(' ', benchArgs)}");
        var (code, stdout, stderr) = Exec(exe, benchArgs);
        if (code != 0)
            throw new InvalidOperationException($"llama-bench exited with {code} for {model}: {stderr}");
        return [.. Parse(stdout, model)];
    }

    /// <summary>Parses llama-bench's "-o json" output: an array with one object per test (pp: n_gen == 0, tg: n_prompt == 0).</summary>
    public static IEnumerable<Row> Parse(string json, string model)
    {
        using var doc = JsonDocument.Parse(json);
        var result = new List<Row>();
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            int nPrompt = e.GetProperty("n_prompt").GetInt32(), nGen = e.GetProperty("n_gen").GetInt32();
            string test = nGen == 0 ? $"pp{nPrompt}" : nPrompt == 0 ? $"tg{nGen}" : $"pp{nPrompt}+tg{nGen}";
            result.Add(new Row(
                model,
                Str(e, "model_type"),
                e.TryGetProperty("model_size", out var size) ? size.GetInt64() : 0,
                e.TryGetProperty("model_n_params", out var np) ? np.GetInt64() : 0,
                test,
                e.TryGetProperty("n_threads", out var nt) ? nt.GetInt32() : 0,
                e.GetProperty("avg_ts").GetDouble(),
                e.TryGetProperty("stddev_ts", out var sd) ? sd.GetDouble() : 0,
                Str(e, "build_commit")));
        }

        return result;
    }

    private static string Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() ?? "" : "";

    private static string Inv(int v) => v.ToString(CultureInfo.InvariantCulture);

    private static (int Code, string Stdout, string Stderr) Exec(string exe, string[] arguments)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {exe}");
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout, stderr.Result);
    }
}
