using System.Globalization;
using Lowbit.Cuda.Ptx;

namespace Lowbit.Tests.Backends.Cuda.Ptx;

/// <summary>The interpreter's parser: a kernel's parameters, register declarations (each checked once, none named
/// like a special register) and instructions, each resolved to an <see cref="Op"/> with its operands.</summary>
internal sealed partial class PtxInterpreter
{
    [System.Text.RegularExpressions.GeneratedRegex(@"^wgmma\.mma_async\.sync\.aligned\.m64n\d+(k16\.f32\.bf16\.bf16|k32\.s32\.s8\.u8)$")]
    private static partial System.Text.RegularExpressions.Regex WgmmaShape();

    private enum Op
    {
        LdParam, Cvta, Mov, Add, Sub, MulLo, MulWide, MadLo, Shl, Shr, And, Or, Xor, Rem, Div, Cvt, CvtBf16x2, Setp, AndPred,
        Selp, Bra, Exit, LdGlobal, StGlobal, CpAsync, Commit, WaitGroup, WaitAll, Bar, Ldmatrix, Mma,
        Min, Mul, Fma, Sqrt, Rcp, Ex2, CvtFloat, LdShared, StShared, RedAdd, Shfl, WarpSync,
        Fence, Wgmma, WgmmaCommit, WgmmaWait, Max,
    }

    private sealed record Operand(string Text)
    {
        public int Register = -1;        // register id
        public string? Special;          // %tid.x, ...
        public ulong Immediate;          // integer or float bits
        public bool IsImmediate;
        public int[]? Vector;            // {%a, %b}
        public int AddressRegister = -1; // [%r+offset]
        public string? AddressSymbol;    // [p_x]
        public long Offset;
    }

    private sealed record Instruction(string Text, Op Op, string[] Suffixes, int Guard, bool Negate, Operand[] Operands)
    {
        public int Target = -1;
        public bool Signed => Suffixes.Any(s => s is "s32" or "s64");
        public bool Wide => Suffixes.Any(s => s is "u64" or "s64" or "b64" or "f64");

        /// <summary>The floating-point type of the instruction (f32, f64), or null for integer and bit types.</summary>
        public string? Float => Suffixes.LastOrDefault(s => s is "f32" or "f64");
    }

    private sealed class Kernel
    {
        public required string Name;
        public required List<string> Parameters;
        public required Dictionary<string, int> Registers;
        public required List<Instruction> Code;
        public int? MaxThreads;
        public required string? SharedSymbol;

        public static Kernel Parse(string[] lines, ref int i, string? sharedSymbol)
        {
            string name = lines[i][".visible .entry ".Length..].TrimEnd('(').Trim();
            var parameters = new List<string>();
            for (i++; lines[i] != ")"; i++)
                parameters.Add(lines[i].TrimEnd(',').Split(' ')[^1]);
            int? maxThreads = null;
            for (i++; lines[i] != "{"; i++)
            {
                if (lines[i].StartsWith(".maxntid ", StringComparison.Ordinal))
                    maxThreads = lines[i][9..].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).Aggregate(1, (a, b) => a * b);
            }
            var registers = new Dictionary<string, int>(StringComparer.Ordinal);
            var code = new List<(string Text, int Line)>();
            var labels = new Dictionary<string, int>(StringComparer.Ordinal);
            for (i++; lines[i] != "}"; i++)
            {
                string line = lines[i];
                if (line.StartsWith(".reg ", StringComparison.Ordinal))
                {
                    string declared = line.TrimEnd(';').Split(' ')[^1];
                    int open = declared.IndexOf('<');
                    string stem = (open < 0 ? declared : declared[..open])[1..];
                    if (PtxWriter.Reserved.Contains(stem))
                        throw new InvalidOperationException($"register %{stem} clashes with a special register.");
                    IEnumerable<string> names = open < 0 ? [declared]
                        : Enumerable.Range(0, int.Parse(declared[(open + 1)..^1], CultureInfo.InvariantCulture)).Select(r => $"%{stem}{r}");
                    foreach (string r in names)
                    {
                        if (!registers.TryAdd(r, registers.Count))
                            throw new InvalidOperationException($"register {r} declared twice.");
                    }
                }
                else if (line.EndsWith(':'))
                    labels.Add(line[..^1], code.Count);
                else
                    code.Add((line.TrimEnd(';'), i));
            }
            var kernel = new Kernel { Name = name, Parameters = parameters, Registers = registers, Code = [], MaxThreads = maxThreads, SharedSymbol = sharedSymbol };
            foreach (var (text, _) in code)
                kernel.Code.Add(kernel.ParseInstruction(text, labels));
            return kernel;
        }

        private Instruction ParseInstruction(string text, Dictionary<string, int> labels)
        {
            string rest = text;
            int guard = -1;
            bool negate = false;
            if (rest.StartsWith('@'))
            {
                int space = rest.IndexOf(' ');
                string p = rest[1..space];
                negate = p.StartsWith('!');
                guard = Register(negate ? p[1..] : p);
                rest = rest[(space + 1)..];
            }
            int split = rest.IndexOf(' ');
            string opcode = split < 0 ? rest : rest[..split];
            string[] parts = opcode.Split('.');
            Operand[] operands = split < 0 ? [] : SplitOperands(rest[(split + 1)..]).Select(Operand).ToArray();
            Op op = parts[0] switch
            {
                "ld" when parts[1] == "param" => Op.LdParam,
                "ld" when parts[1] == "global" => Op.LdGlobal,
                "st" when parts[1] == "global" => Op.StGlobal,
                "ld" when parts[1] == "shared" => Op.LdShared,
                "st" when parts[1] == "shared" => Op.StShared,
                "red" when opcode is "red.global.add.f64" => Op.RedAdd,
                "shfl" when opcode is "shfl.sync.bfly.b32" or "shfl.sync.idx.b32" => Op.Shfl,
                "bar" when opcode == "bar.warp.sync" => Op.WarpSync,
                "min" => Op.Min,
                "max" when parts[1] == "f32" => Op.Max,
                "mul" when parts[1] is "f32" or "f64" || opcode == "mul.rn.f32" => Op.Mul,
                "fma" => Op.Fma,
                "sqrt" => Op.Sqrt,
                "rcp" => Op.Rcp,
                "ex2" => Op.Ex2,
                "cvt" when opcode is "cvt.rn.f32.f64" or "cvt.f64.f32" or "cvt.rn.f32.s32" => Op.CvtFloat,
                "cvta" => Op.Cvta,
                "mov" => Op.Mov,
                "add" => Op.Add,
                "sub" => Op.Sub,
                "mul" when parts[1] == "lo" => Op.MulLo,
                "mul" when parts[1] == "wide" => Op.MulWide,
                "mad" when parts[1] == "lo" => Op.MadLo,
                "shl" => Op.Shl,
                "shr" => Op.Shr,
                "and" when parts[1] == "pred" => Op.AndPred,
                "and" => Op.And,
                "or" => Op.Or,
                "xor" => Op.Xor,
                "rem" => Op.Rem,
                "div" => Op.Div,
                "cvt" when opcode == "cvt.rn.bf16x2.f32" => Op.CvtBf16x2,
                "cvt" when opcode is "cvt.u64.u32" or "cvt.s64.s32" => Op.Cvt,
                "setp" => Op.Setp,
                "selp" => Op.Selp,
                "bra" => Op.Bra,
                "exit" or "ret" => Op.Exit,
                // An L2 prefetch-size hint changes no result.
                "cp" when opcode is "cp.async.cg.shared.global" or "cp.async.ca.shared.global" or "cp.async.cg.shared.global.L2::128B" => Op.CpAsync,
                "cp" when opcode == "cp.async.commit_group" => Op.Commit,
                "cp" when opcode == "cp.async.wait_group" => Op.WaitGroup,
                "cp" when opcode == "cp.async.wait_all" => Op.WaitAll,
                "bar" when opcode == "bar.sync" => Op.Bar,
                "ldmatrix" when opcode is "ldmatrix.sync.aligned.m8n8.x4.shared.b16" or "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" => Op.Ldmatrix,
                "mma" when opcode is "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" or "mma.sync.aligned.m16n8k32.row.col.s32.s8.u8.s32" => Op.Mma,
                "fence" when opcode == "fence.proxy.async.shared::cta" => Op.Fence,
                "wgmma" when opcode == "wgmma.fence.sync.aligned" => Op.Fence,
                "wgmma" when opcode == "wgmma.commit_group.sync.aligned" => Op.WgmmaCommit,
                "wgmma" when opcode == "wgmma.wait_group.sync.aligned" => Op.WgmmaWait,
                "wgmma" when WgmmaShape().IsMatch(opcode) => Op.Wgmma,
                _ => throw new NotSupportedException($"the interpreter does not know \"{text}\"."),
            };
            var instruction = new Instruction(text, op, parts[1..], guard, negate, operands);
            if (op == Op.Bra)
                instruction.Target = labels.TryGetValue(operands[0].Text, out int target) ? target : throw new InvalidOperationException($"no label {operands[0].Text}.");
            return instruction;
        }

        private static IEnumerable<string> SplitOperands(string text)
        {
            int depth = 0, start = 0;
            for (int i = 0; i < text.Length; i++)
            {
                if (text[i] is '{' or '[')
                    depth++;
                else if (text[i] is '}' or ']')
                    depth--;
                else if (text[i] == ',' && depth == 0)
                {
                    yield return text[start..i].Trim();
                    start = i + 1;
                }
            }
            yield return text[start..].Trim();
        }

        private Operand Operand(string text)
        {
            var o = new Operand(text);
            if (text.StartsWith('{'))
                o.Vector = text[1..^1].Split(',').Select(r => Register(r.Trim())).ToArray();
            else if (text.StartsWith('['))
            {
                string inner = text[1..^1];
                int plus = inner.IndexOf('+');
                string baseText = plus < 0 ? inner : inner[..plus];
                o.Offset = plus < 0 ? 0 : long.Parse(inner[(plus + 1)..], CultureInfo.InvariantCulture);
                if (baseText.StartsWith('%'))
                    o.AddressRegister = Register(baseText);
                else
                    o.AddressSymbol = baseText;
            }
            else if (text is "%tid.x" or "%ctaid.x" or "%ctaid.y" or "%ntid.x")
                o.Special = text;
            else if (text.StartsWith('%'))
                o.Register = Register(text);
            else if (text.StartsWith("0f", StringComparison.Ordinal) || text.StartsWith("0d", StringComparison.Ordinal))
            {
                o.Immediate = ulong.Parse(text[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                o.IsImmediate = true;
            }
            else if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
            {
                o.Immediate = (ulong)value;
                o.IsImmediate = true;
            }
            else if (text == SharedSymbol)
            {
                o.Immediate = SharedBase;
                o.IsImmediate = true;
            }
            return o; // else a label
        }

        private int Register(string name) =>
            Registers.TryGetValue(name, out int id) ? id : throw new InvalidOperationException($"{Name}: register {name} is used but not declared.");
    }
}
