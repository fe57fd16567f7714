using Lowbit.Bench;
using Lowbit.Bench.Commands;

// lowbit-bench: benchmark tooling for Lowbit.
//   make-llama2c  write a deterministic random llama2.c (legacy v0) checkpoint
//   bandwidth     measure streaming read bandwidth
//   llamacpp      run llama.cpp's llama-bench (built elsewhere) and parse pp/tg tok/s
//   cpu           Lowbit's prefill/decode tok/s and GB/s against bandwidth, beside llama-bench, in one run
//   linear        decode-shaped linear layers per weight format (bf16, int8wo, int4wo-G) against bandwidth

if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
{
    PrintUsage();
    return args.Length == 0 ? 2 : 0;
}

try
{
    var rest = args[1..];
    return args[0] switch
    {
        "make-llama2c" => MakeLlama2cCommand.Run(new Args(rest, MakeLlama2cCommand.Options)),
        "bandwidth" => BandwidthCommand.Run(new Args(rest, BandwidthCommand.Options)),
        "llamacpp" => LlamaCppCommand.Run(new Args(rest, LlamaCppCommand.Options)),
        "cpu" => CpuCommand.Run(new Args(rest, CpuCommand.Options)),
        "linear" => LinearCommand.Run(new Args(rest, LinearCommand.Options)),
        _ => Fail($"unknown command '{args[0]}'"),
    };
}
catch (ArgsException e)
{
    return Fail(e.Message);
}
catch (Exception e) when (e is IOException or InvalidDataException or InvalidOperationException or NotSupportedException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

static int Fail(string message)
{
    Console.Error.WriteLine($"error: {message}");
    PrintUsage();
    return 2;
}

static void PrintUsage()
{
    Console.Error.WriteLine("""
        usage: lowbit-bench <command> [options]

          make-llama2c --dim 2048 --hidden 5632 --layers 16 --heads 32 --kv-heads 8 --vocab 32000
                       --seq-len 2048 [--seed 1] [--threads N] -o FILE
              Write a llama2.c legacy-format checkpoint with deterministic random weights
              (tied classifier, uniform weights with std 0.02, norm weights 1.0).

          bandwidth [--threads N] [--mb 1024] [--passes 7]
              Streaming read bandwidth (vectorized sum over a buffer >> L3); prints best and median GB/s.

          llamacpp --bin DIR --model GGUF [--model GGUF ...] [--threads 2] [--prompt 128] [--gen 64]
                   [--reps 3] [--no-bandwidth] [--bw-mb 1024] [--json-out FILE]
              Run DIR/llama-bench (never built by this tool) and parse prefill (pp) and decode (tg) tok/s;
              measures bandwidth right before and after unless --no-bandwidth.

          cpu --model DIR [--model DIR ...] [--quant none|int8wo|int4wo-64 ...] [--threads 2] [--prompt 128]
              [--gen 64] [--rounds 3] [--llama-bin DIR --gguf FILE [--gguf FILE ...]] [--bw-mb 1024]
              [--weight-memory auto|mapped|huge-pages ...]
              Lowbit's prefill and decode tok/s per model directory (and per --quant format; NAME+head
              quantizes the output head too) and, with
              --llama-bin, llama-bench's on the GGUF files, taking turns each round with a bandwidth pass;
              best of the rounds; decode GB/s against the best bandwidth of the run.

          linear [--threads 2] [--dim 2048] [--hidden 5632] [--kv-dim 256] [--layers 3] [--reps 20]
                 [--format bf16 --format int8wo --format int4wo-64] [--bw-mb 512] [--tokens 1]
              Decode (m = 1; --tokens M for a prefill of M tokens) through a Llama block's seven linear layers per weight format; GB/s, share of the
              read bandwidth measured before and after, and speed-up over the first format.
        """);
}
